"""Paged lists count up to a cap: exact below it, "cap+" beyond it (a bank's whole table is never scanned
just to print a total)."""

from __future__ import annotations

from sqlalchemy import select

from console.audit import record
from console.context import ConsoleContext
from console.paging import capped_count
from console.tables import AuditRow


def test_the_count_is_exact_below_the_cap_and_stops_at_it(console_ctx: ConsoleContext) -> None:
    with console_ctx.db.transaction() as session:
        for n in range(7):
            record(session, "tester", "photo_view", object_id=f"p{n}")
    with console_ctx.db.transaction() as session:
        query = select(AuditRow).where(AuditRow.action == "photo_view").order_by(AuditRow.id)
        assert capped_count(session, query, cap=10) == (7, True)
        assert capped_count(session, query, cap=7) == (7, True)
        assert capped_count(session, query, cap=6) == (6, False)
        assert capped_count(session, query.where(AuditRow.object_id == "p3"), cap=6) == (1, True)
