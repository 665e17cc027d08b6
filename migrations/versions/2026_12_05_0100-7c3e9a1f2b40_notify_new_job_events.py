"""notify new job events (Postgres): the API's live streams wake on them instead of waiting for their next poll

Revision ID: 7c3e9a1f2b40
Revises: 5b1d2c3e4f60
Create Date: 2026-12-05 01:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7c3e9a1f2b40"
down_revision: str | None = "5b1d2c3e4f60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the channel is jobcore.models.EVENTS_CHANNEL; the payload the job's id. Postgres sends one notification per
# transaction for equal payloads, at commit, so a batch of events costs one.
FUNCTION = """
CREATE OR REPLACE FUNCTION notify_job_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('job_events', NEW.job_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: the streams poll
    op.execute(FUNCTION)
    op.execute(
        "CREATE TRIGGER job_events_notify AFTER INSERT ON job_events FOR EACH ROW EXECUTE FUNCTION notify_job_event()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS job_events_notify ON job_events")
    op.execute("DROP FUNCTION IF EXISTS notify_job_event()")
