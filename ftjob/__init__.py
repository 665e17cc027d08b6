"""``ftjob``: a command-line client for the finetuning job service.

Submit a YAML config as a job, follow it live with a progress line, list, show and cancel jobs, and fetch a generate
job's answers. It needs only ``httpx`` and the standard library (no torch), so it installs anywhere.
``python -m ftjob --help`` lists the commands and the exit codes scripts can rely on.
"""

from __future__ import annotations

__version__ = "0.1.0"
