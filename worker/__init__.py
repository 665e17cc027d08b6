"""The Celery worker: claims a job in the database, runs the engine CLI as a child process in its own process group,
streams its output and events back into the database, and records the outcome.

Modules:
- ``celery_app``: the Celery app, built from settings (the command line that starts a worker: ``jobcore.process``).
- ``tasks``: the ``jobs.run`` task; ``consumer``: the consumer, reconnecting to a lost broker within a second or so.
- ``dispatch``: enqueueing a job (the one thing the API imports from here; light to import).
- ``runner``: a job's lifecycle on a worker: claim, start, follow, finish or hand back.
- ``launch``: the engine command for a job's kind, and the config a run after the first uses.
- ``supervise``: the engine as a process group: started, signalled, stopped (checkpoint first), reaped.
- ``output``: the engine's pipes and events file, read as they are written.
- ``outcome``: the job's outcome from the engine's final status and exit, a pure function.
- ``store``: every database access of the worker, fenced by the job's attempt (transitions: ``jobcore.transitions``).
- ``recovery``: lost workers' jobs requeued or failed, forgotten queued jobs sent again.
- ``shutdown``: a warm shutdown hands running jobs back with a checkpoint.
- ``observability``: JSON logs with the job id, and the worker's Prometheus metrics.
"""
