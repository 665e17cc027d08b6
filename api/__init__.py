"""The job service: FastAPI app, persistence and the job model shared with the workers. Never imports torch."""
