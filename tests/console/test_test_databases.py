"""The console tests' PostgreSQL databases: made from the template ahead of need, each handed out once, each at
the newest revision and empty, so that no test sees what another wrote."""

from __future__ import annotations

from sqlalchemy import func, insert, select

from console.db import make_engine
from console.migrate import current_revision, head_revision
from console.tables import User
from tests.console.conftest import PASSWORD, PgFactory, _drop_later, _pg_url


def test_the_factory_hands_out_a_new_database_each_time_at_the_newest_revision(pg_factory: PgFactory) -> None:
    first, second = pg_factory.take(), pg_factory.take()
    assert first != second
    engines = [make_engine(_pg_url(name)) for name in (first, second)]
    try:
        with engines[0].begin() as conn:  # what one test writes ...
            conn.execute(insert(User).values(username="someone", display_name="someone",
                                             password_hash=PASSWORD, role="admin", scope_kind="all"))
        for engine in engines:
            assert current_revision(engine) == head_revision(engine)
        with engines[1].connect() as conn:  # ... the next one's database does not hold
            assert conn.execute(select(func.count()).select_from(User)).scalar_one() == 0
    finally:
        for engine in engines:
            engine.dispose()
        _drop_later(first)
        _drop_later(second)
