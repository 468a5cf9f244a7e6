"""Bulk imports that survive a crash: who runs a job and when it last said so (a lease), the sha256 of its CSV
(a resume must read the same file), where its files came from, and a ledger of the rows already done.

- ``import_jobs.runner`` names the process running the job (host, pid and a token of that process) and
  ``heartbeat_at`` is when it last renewed its lease; a job whose runner is gone is marked ``interrupted``.
- ``import_job_rows`` holds one line per finished row: its number, status, error code and person id, written in
  the row's own transaction (with the person's change and the job's counters), so a resume skips exactly the
  rows that are done. It holds no name and no reason text: the report (``import_jobs.report``) does, and an
  erasure scrubs it there.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("import_jobs") as batch:
        batch.add_column(sa.Column("runner", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("csv_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("source", sa.String(length=8), nullable=False, server_default="cli"))
    op.create_table(
        "import_job_rows",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["import_jobs.id"], name=op.f("fk_import_job_rows_job_id_import_jobs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "line", name=op.f("pk_import_job_rows")),
    )
    op.create_index(op.f("ix_import_jobs_status"), "import_jobs", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_import_jobs_status"), table_name="import_jobs")
    op.drop_table("import_job_rows")
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("source")
        batch.drop_column("csv_sha256")
        batch.drop_column("heartbeat_at")
        batch.drop_column("runner")
