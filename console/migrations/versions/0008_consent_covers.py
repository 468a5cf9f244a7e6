"""Consent purposes: each consent record says which uses it covers (``consents.covers``, space-separated codes of
:data:`console.consent.PURPOSES`). Records from before cover the enrolment only, the use they were taken for.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("covers", sa.String(length=200), nullable=False, server_default="enrolment"))


def downgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("covers")
