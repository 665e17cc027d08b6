"""project secrets, encrypted at rest

Revision ID: 4e8a2c6b1d90
Revises: 9d1f4b7a6c21
Create Date: 2026-12-05 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4e8a2c6b1d90"
down_revision: str | None = "9d1f4b7a6c21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_secrets_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint("project", "name", name="uq_secrets_project_name"),
    )
    op.create_index(op.f("ix_secrets_project"), "secrets", ["project"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_secrets_project"), table_name="secrets")
    op.drop_table("secrets")
