"""Edge registration by one-time code (edge_codes) and revocable edge credentials (edges.revoked_at).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("edges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "edge_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("edge_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["branch_id"], ["branches.id"], name=op.f("fk_edge_codes_branch_id"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["edge_id"], ["edges.id"], name=op.f("fk_edge_codes_edge_id"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_edge_codes_code_hash")),
    )
    with op.batch_alter_table("edge_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_edge_codes_branch_id"), ["branch_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("edge_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_edge_codes_branch_id"))
    op.drop_table("edge_codes")
    with op.batch_alter_table("edges", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
