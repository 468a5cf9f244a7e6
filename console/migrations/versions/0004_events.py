"""Up: the edges' events (idempotent on edge, epoch and seq) and their projections: the central clip index,
service episodes and hourly counts for the bank view; append-only clip verdicts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A verdict is never changed or removed: a new one is added (the newest is current). Triggers on both backends.
_PG_GUARD = [
    """CREATE FUNCTION clip_verdicts_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'clip_verdicts is append-only: % refused', TG_OP; END; $$""",
    """CREATE TRIGGER clip_verdicts_no_update BEFORE UPDATE OR DELETE ON clip_verdicts
       FOR EACH ROW EXECUTE FUNCTION clip_verdicts_append_only()""",
    """CREATE TRIGGER clip_verdicts_no_truncate BEFORE TRUNCATE ON clip_verdicts
       FOR EACH STATEMENT EXECUTE FUNCTION clip_verdicts_append_only()""",
]
_SQLITE_GUARD = [
    """CREATE TRIGGER clip_verdicts_no_update BEFORE UPDATE ON clip_verdicts
       BEGIN SELECT RAISE(ABORT, 'clip_verdicts is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER clip_verdicts_no_delete BEFORE DELETE ON clip_verdicts
       BEGIN SELECT RAISE(ABORT, 'clip_verdicts is append-only: DELETE refused'); END""",
]

_TS = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, ondelete: str | None = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], name=op.f(f"fk_{table}_{column}"), ondelete=ondelete)


def _people() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column("staff_id", sa.String(length=64), nullable=True),
            sa.Column("staff_name", sa.String(length=128), nullable=True),
            sa.Column("vip_id", sa.String(length=64), nullable=True),
            sa.Column("vip_name", sa.String(length=128), nullable=True)]


def upgrade() -> None:
    op.create_table(
        "edge_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edge_id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        _fk("edge_events", "branch_id", "branches.id"),
        _fk("edge_events", "edge_id", "edges.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_events")),
        sa.UniqueConstraint("edge_id", "epoch", "seq", name=op.f("uq_edge_events_edge_id")),
    )
    op.create_index("ix_edge_events_branch_kind_at", "edge_events", ["branch_id", "kind", "at"], unique=False)
    op.create_table(
        "central_clips",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("edge_id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.String(length=64), nullable=False),
        sa.Column("camera", sa.String(length=64), nullable=False),
        *_people(),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=80), nullable=True),
        sa.Column("uploaded_at", _TS, nullable=True),
        sa.Column("received_at", _TS, nullable=False),
        _fk("central_clips", "branch_id", "branches.id"),
        _fk("central_clips", "edge_id", "edges.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_central_clips")),
    )
    op.create_index("ix_central_clips_branch_id_started_at", "central_clips", ["branch_id", "started_at"])
    op.create_index(op.f("ix_central_clips_edge_id"), "central_clips", ["edge_id"])
    op.create_index(op.f("ix_central_clips_interaction_id"), "central_clips", ["interaction_id"])
    op.create_table(
        "central_interactions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("edge_id", sa.Integer(), nullable=False),
        sa.Column("camera", sa.String(length=64), nullable=False),
        *_people(),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("wait_s", sa.Float(), nullable=True),
        sa.Column("interrupted", sa.Boolean(), nullable=False),
        sa.Column("clip_id", sa.String(length=64), nullable=True),
        _fk("central_interactions", "branch_id", "branches.id"),
        _fk("central_interactions", "edge_id", "edges.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_central_interactions")),
    )
    op.create_index("ix_central_interactions_branch_id_started_at", "central_interactions",
                    ["branch_id", "started_at"])
    op.create_index(op.f("ix_central_interactions_edge_id"), "central_interactions", ["edge_id"])
    op.create_table(
        "central_hours",
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("hour", _TS, nullable=False),
        sa.Column("vip_arrivals", sa.Integer(), nullable=False),
        sa.Column("unattended", sa.Integer(), nullable=False),
        sa.Column("unstaffed", sa.Integer(), nullable=False),
        sa.Column("interactions", sa.Integer(), nullable=False),
        sa.Column("edge_stats", sa.JSON(), nullable=True),
        _fk("central_hours", "branch_id", "branches.id"),
        sa.PrimaryKeyConstraint("branch_id", "hour", name=op.f("pk_central_hours")),
    )
    op.create_table(
        "clip_verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        _fk("clip_verdicts", "clip_id", "central_clips.id", None),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clip_verdicts")),
    )
    op.create_index(op.f("ix_clip_verdicts_clip_id"), "clip_verdicts", ["clip_id"])
    for statement in _PG_GUARD if op.get_bind().dialect.name == "postgresql" else _SQLITE_GUARD:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS clip_verdicts_no_truncate ON clip_verdicts")
        op.execute("DROP TRIGGER IF EXISTS clip_verdicts_no_update ON clip_verdicts")
        op.execute("DROP FUNCTION IF EXISTS clip_verdicts_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS clip_verdicts_no_update")
        op.execute("DROP TRIGGER IF EXISTS clip_verdicts_no_delete")
    op.drop_index(op.f("ix_clip_verdicts_clip_id"), table_name="clip_verdicts")
    op.drop_table("clip_verdicts")
    op.drop_table("central_hours")
    op.drop_index(op.f("ix_central_interactions_edge_id"), table_name="central_interactions")
    op.drop_index("ix_central_interactions_branch_id_started_at", table_name="central_interactions")
    op.drop_table("central_interactions")
    op.drop_index(op.f("ix_central_clips_interaction_id"), table_name="central_clips")
    op.drop_index(op.f("ix_central_clips_edge_id"), table_name="central_clips")
    op.drop_index("ix_central_clips_branch_id_started_at", table_name="central_clips")
    op.drop_table("central_clips")
    op.drop_index("ix_edge_events_branch_kind_at", table_name="edge_events")
    op.drop_table("edge_events")
