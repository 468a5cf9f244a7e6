"""The skeleton: migrations up and down on both backends, the audit table append-only, sign-in required."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from console.audit import record
from console.context import ConsoleContext
from console.db import make_engine
from console.migrate import current_revision, downgrade, head_revision, upgrade


def test_migrations_upgrade_from_empty_and_downgrade_again(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision(engine)
        with engine.connect() as conn:
            tables = set(conn.dialect.get_table_names(conn))
        assert {"persons", "photos", "plates", "consents", "audit", "users", "branches", "edges"} <= tables
        downgrade(engine, "base")
        assert current_revision(engine) is None
        with engine.connect() as conn:
            assert set(conn.dialect.get_table_names(conn)) <= {"alembic_version"}
        upgrade(engine)  # and up again on the same database
        assert current_revision(engine) == head_revision(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("statement", ["UPDATE audit SET actor = 'someone else'", "DELETE FROM audit"])
def test_the_audit_table_refuses_update_and_delete(console_ctx: ConsoleContext, statement: str) -> None:
    with console_ctx.db.transaction() as session:
        record(session, "tester", "photo_view", object_type="photo", object_id="p1")
    with pytest.raises(DBAPIError, match="append-only"), console_ctx.db.transaction() as session:
        session.execute(text(statement))
    with console_ctx.db.transaction() as session:
        rows = session.execute(text("SELECT actor, action FROM audit")).all()
    assert [tuple(r) for r in rows] == [("tester", "photo_view")]


def test_healthz_answers_without_a_credential(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_migrations_create_exactly_the_schema_the_tables_describe(database_url: str) -> None:
    # a column, index or constraint added to console/tables.py without a revision (or the reverse) fails here
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from console.tables import Base

    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()
