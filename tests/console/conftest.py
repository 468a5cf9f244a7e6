"""Console fixtures: a fresh real database per test, on SQLite and on PostgreSQL (127.0.0.1:5432), and an app.

``backend`` is parametrised over both; a test that takes ``console_ctx`` or ``client`` runs twice. Each test
gets a database of its own at the newest revision: the migrations run once per session into a template (a
SQLite file that each test copies; a PostgreSQL database each test's is created from), which is the same
schema they would give each test (tests/console/test_skeleton.py runs them from empty on both backends).
``database_url`` is an empty database for the migration tests. ``$SMARTBRANCH_TEST_PG`` overrides the server
URL; without a reachable server the PostgreSQL half is skipped with the reason (CI starts it in .ci/run).
A CREATE DATABASE costs about 0.3 s of waiting on the server, so a thread makes the next tests' databases from
the template ahead of need (``PgFactory``): each test still gets a new database of its own, made while the test
before it ran.

Passwords are hashed with argon2's smallest parameters in this suite (``use_password_hasher``, set in
tests/conftest.py): the real ones cost about 0.1 s per hash and per sign-in, and what they protect is not what
these tests check. The SQLite template (``sqlite_template``) is there too: the edge's sync tests copy it as well.
"""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from console.app import create_app
from console.config import ConsoleConfig, DatabaseConfig
from console.context import ConsoleContext
from console.db import make_engine, utcnow
from console.migrate import upgrade
from console.security import digest, hash_password, new_secret, start_session
from console.tables import ApiToken, Branch, User
from vision.engines.base import FaceEngine

PG_SERVER = os.environ.get("SMARTBRANCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PASSWORD = "correct horse battery staple"


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_SERVER, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # the reason is shown in the skip
        return f"PostgreSQL not reachable at {PG_SERVER}: {str(exc).splitlines()[0]}"


_PG_PROBLEM: list[str | None] = []


def pg_problem() -> str | None:
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_pg_reachable())
    return _PG_PROBLEM[0]


def _pg_admin() -> Engine:
    return create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")


def _pg_url(name: str) -> str:
    return f"{PG_SERVER.rsplit('/', 1)[0]}/{name}"


_DROPS: list[threading.Thread] = []


def _drop_later(name: str) -> None:
    """Drop a test's database on a thread of its own (a drop costs a few hundred ms of waiting on the server)."""
    def drop() -> None:
        admin = _pg_admin()
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()

    thread = threading.Thread(target=drop, name=f"drop-{name}")
    thread.start()
    _DROPS.append(thread)


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards)."""
    problem = pg_problem()
    if problem:
        pytest.skip(problem)
    name = f"sbtest_{secrets.token_hex(6)}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield _pg_url(name)
    _drop_later(name)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL database at the newest revision, the template of every test's migrated database."""
    problem = pg_problem()
    if problem:
        pytest.skip(problem)
    name = f"sbtemplate_{secrets.token_hex(6)}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(_pg_url(name))
    upgrade(engine)
    engine.dispose()  # a template must have no open connection when it is copied
    yield name
    for thread in _DROPS:
        thread.join(30)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class PgFactory:
    """Makes databases from ``template`` on a thread of its own, ``ahead`` of the tests that take them; each one
    is handed out once. If the thread fails, :meth:`take` makes the database itself (and so meets the error)."""

    def __init__(self, template: str, ahead: int = 2) -> None:
        self._template = template
        self._ready: queue.Queue[str] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-factory", daemon=True)
        self._thread.start()

    def _create(self, admin: Engine) -> str:
        name = f"sbtest_{secrets.token_hex(6)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"'))
        return name

    def _run(self) -> None:
        admin = _pg_admin()
        try:
            while not self._stop.is_set():
                name = self._create(admin)
                while True:
                    try:
                        self._ready.put(name, timeout=0.2)
                        break
                    except queue.Full:
                        if self._stop.is_set():
                            _drop_later(name)
                            return
        except Exception:  # take() makes its own database and so fails with the server's reason
            return
        finally:
            admin.dispose()

    def take(self) -> str:
        while self._thread.is_alive() or not self._ready.empty():
            try:
                return self._ready.get(timeout=0.2)
            except queue.Empty:
                continue
        admin = _pg_admin()
        try:
            return self._create(admin)
        finally:
            admin.dispose()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        while not self._ready.empty():
            _drop_later(self._ready.get_nowait())


@pytest.fixture(scope="session")
def pg_factory(pg_template: str) -> Iterator[PgFactory]:
    """Fresh databases at the newest revision, made from the template while earlier tests run."""
    factory = PgFactory(pg_template)
    yield factory
    factory.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database on ``backend`` (not migrated)."""
    if backend == "sqlite":
        return f"sqlite:///{(tmp_path / 'console.db').as_posix()}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture()
def migrated_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of this test's own on ``backend``, at the newest revision."""
    if backend == "sqlite":
        path = tmp_path / "console.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path.as_posix()}"
        return
    name = request.getfixturevalue("pg_factory").take()
    yield _pg_url(name)
    _drop_later(name)


@pytest.fixture()
def console_config(migrated_url: str, tmp_path: Path) -> ConsoleConfig:
    return ConsoleConfig(data_dir=tmp_path / "console", database=DatabaseConfig(url=migrated_url))


class LazyEngine:
    """Stands for the session's real engine pool until a test first needs a face (tests of sign-in and lists
    never load dlib)."""


@pytest.fixture()
def console_ctx(console_config: ConsoleConfig, request: pytest.FixtureRequest) -> Iterator[ConsoleContext]:
    """A migrated console on ``backend`` whose face engine is the session's real dlib pool (built on first use)."""
    ctx = ConsoleContext.open(console_config)
    # the session's real pool, built only if a test asks the context for its engine
    pool_holder: list[FaceEngine] = []

    def shared_engine() -> FaceEngine:
        if not pool_holder:
            pool_holder.append(request.getfixturevalue("engine_pool"))
        return pool_holder[0]

    ctx.engine = shared_engine  # type: ignore[method-assign]
    yield ctx
    ctx.close()


@pytest.fixture()
def client(console_ctx: ConsoleContext) -> Iterator[TestClient]:
    app = create_app(console_ctx.config, context=console_ctx)
    with TestClient(app) as test_client:
        yield test_client


def add_branch(ctx: ConsoleContext, code: str, *, region: str = "east", name: str | None = None) -> int:
    with ctx.db.transaction() as session:
        branch = Branch(code=code, name=name or f"{code} 支行", region=region, timezone="Asia/Shanghai")
        session.add(branch)
        session.flush()
        return branch.id


def add_user(ctx: ConsoleContext, username: str, role: str, *, scope_kind: str = "all",
             region: str | None = None, branch_ids: tuple[int, ...] = (), password: str = PASSWORD) -> int:
    with ctx.db.transaction() as session:
        user = User(username=username, display_name=username, password_hash=hash_password(password), role=role,
                    scope_kind=scope_kind, scope_region=region)
        user.branches = [session.get_one(Branch, b) for b in branch_ids]
        session.add(user)
        session.flush()
        return user.id


def add_token(ctx: ConsoleContext, user_id: int, name: str = "script") -> str:
    """A new API token of ``user_id``; returns the bearer value."""
    value = new_secret()
    with ctx.db.transaction() as session:
        session.add(ApiToken(user_id=user_id, name=name, token_hash=digest(value)))
    return value


def session_headers(ctx: ConsoleContext, user_id: int, client: TestClient) -> dict[str, str]:
    """Sign ``user_id`` in without the login endpoint: sets the session cookie on ``client`` and returns the
    CSRF header an unsafe call needs."""
    from datetime import timedelta

    from console.security import CSRF_HEADER, SESSION_COOKIE

    with ctx.db.transaction() as session:
        cookie, csrf = start_session(session, session.get_one(User, user_id), utcnow() + timedelta(hours=1))
    client.cookies.set(SESSION_COOKIE, cookie)
    return {CSRF_HEADER: csrf}


Factory = Callable[..., int]
