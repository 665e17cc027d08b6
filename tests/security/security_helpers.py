"""Helpers shared by the security tests (imported as ``security_helpers``, like ``sft_helpers`` in tests/engine)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from api.admin import create_token
from jobcore.db import session_scope
from jobcore.settings import ServiceSettings


@dataclass
class FuzzStats:
    """What the schemathesis fuzz sent, printed in the test summary."""

    requests: int = 0
    server_errors: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def record(self, status: int) -> None:
        self.requests += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status >= 500:
            self.server_errors += 1


FUZZ_STATS = FuzzStats()


def make_token(settings: ServiceSettings, project: str) -> str:
    with session_scope(settings.database_url) as session:
        return create_token(session, project, "security-test")[1]


def new_project() -> str:
    return f"sec-{secrets.token_hex(4)}"
