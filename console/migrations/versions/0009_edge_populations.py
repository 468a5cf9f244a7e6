"""Face population aggregates per edge box (``edge_populations``): the newest count, mean and scatter each edge
sent, encrypted; the console merges them per region and face model for a new branch's prior.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "edge_populations",
        sa.Column("edge_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("stats", sa.LargeBinary(), nullable=False),
        sa.Column("epoch", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["edge_id"], ["edges.id"], name=op.f("fk_edge_populations_edge_id"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("edge_id", name=op.f("pk_edge_populations")),
    )
    op.create_index(op.f("ix_edge_populations_model_id"), "edge_populations", ["model_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_edge_populations_model_id"), table_name="edge_populations")
    op.drop_table("edge_populations")
