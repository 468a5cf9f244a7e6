"""Erasure reaches the events: which person ids each edge event names (edge_event_persons), and indexes on the
projections' person ids, so that erasing a person scrubs their name from the events by index. The events
already stored are indexed here, and the names of persons erased before this revision are scrubbed now.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from alerts.erasure import ERASED_NAME, person_ids, scrub

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE = 1000
_events = sa.table("edge_events", sa.column("id", sa.Integer()), sa.column("body", sa.JSON()))
_links = sa.table("edge_event_persons", sa.column("person_id", sa.String()), sa.column("event_id", sa.Integer()))
_tombstones = sa.table("tombstones", sa.column("person_id", sa.String()))
_PROJECTIONS = ("central_interactions", "central_clips")


def _backfill(conn: sa.Connection) -> None:
    """Index the stored events' person ids, page by page; scrub the bodies naming an erased person."""
    erased = set(conn.execute(sa.select(_tombstones.c.person_id)).scalars())
    last = 0
    while True:
        rows = conn.execute(sa.select(_events.c.id, _events.c.body).where(_events.c.id > last)
                            .order_by(_events.c.id).limit(PAGE)).all()
        if not rows:
            return
        links = [{"person_id": pid, "event_id": ident} for ident, body in rows for pid in person_ids(body) - erased]
        if links:
            conn.execute(_links.insert(), links)
        for ident, body in rows:
            if erased and scrub(body, erased):
                conn.execute(_events.update().where(_events.c.id == ident).values(body=body))
        last = rows[-1][0]


def _scrub_projections(conn: sa.Connection) -> None:
    erased = sa.select(_tombstones.c.person_id).scalar_subquery()
    for name in _PROJECTIONS:
        table = sa.table(name, sa.column("staff_id", sa.String()), sa.column("staff_name", sa.String()),
                         sa.column("vip_id", sa.String()), sa.column("vip_name", sa.String()))
        conn.execute(table.update().where(table.c.staff_id.in_(erased), table.c.staff_name.is_not(None))
                     .values(staff_name=ERASED_NAME))
        conn.execute(table.update().where(table.c.vip_id.in_(erased), table.c.vip_name.is_not(None))
                     .values(vip_name=ERASED_NAME))


def upgrade() -> None:
    op.create_table(
        "edge_event_persons",
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["edge_events.id"], name=op.f("fk_edge_event_persons_event_id"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("person_id", "event_id", name=op.f("pk_edge_event_persons")),
    )
    op.create_index(op.f("ix_edge_event_persons_event_id"), "edge_event_persons", ["event_id"])
    for name in _PROJECTIONS:
        op.create_index(op.f(f"ix_{name}_staff_id"), name, ["staff_id"])
        op.create_index(op.f(f"ix_{name}_vip_id"), name, ["vip_id"])
    conn = op.get_bind()
    _backfill(conn)
    _scrub_projections(conn)


def downgrade() -> None:
    for name in reversed(_PROJECTIONS):
        op.drop_index(op.f(f"ix_{name}_vip_id"), table_name=name)
        op.drop_index(op.f(f"ix_{name}_staff_id"), table_name=name)
    op.drop_index(op.f("ix_edge_event_persons_event_id"), table_name="edge_event_persons")
    op.drop_table("edge_event_persons")
