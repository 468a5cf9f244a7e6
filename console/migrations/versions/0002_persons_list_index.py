"""An index for the persons list's order (newest change first): without it every page sorted every person.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_persons_updated_at_id", "persons", ["updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_persons_updated_at_id", table_name="persons")
