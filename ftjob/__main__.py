"""``python -m ftjob``: the same as the ``ftjob`` command."""

from __future__ import annotations

import sys

from ftjob.cli import main

sys.exit(main())
