"""The Celery worker: claims a job in the database, runs the engine CLI as a child process in its own process group,
streams its output and events back into the database, and records the outcome.

Modules: ``celery_app`` (the Celery app), ``dispatch`` (enqueue, used by the API; light to import), ``store`` (every
database access of the worker, fenced by the job's attempt), ``runner`` (the child process and its streams) and
``tasks`` (the ``jobs.run`` task).
"""
