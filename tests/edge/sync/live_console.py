"""A real console for the edge's sync tests: console.app over a migrated SQLite database in tmp_path, served on a
free loopback port by alerts.server.ServerThread, with branches, an admin, codes and persons made by the console's
own services (face checks on the session's real dlib engine pool)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from alerts.server import ServerThread
from console.app import create_app
from console.config import ConsoleConfig, DatabaseConfig, SyncConfig
from console.context import ConsoleContext
from console.db import make_engine
from console.enrol_photos import PhotoUpload
from console.enrolment import ConsentInput, PersonInput, create_person, erase_person
from console.migrate import upgrade
from console.security import Principal, hash_password, principal_for
from console.sync.codes import create_code, revoke
from console.tables import AuditRow, Branch, Edge, User
from tests.waiting import free_port
from vision.engines.owner import EnginePool


class LiveConsole:
    def __init__(self, folder: Path, engine_pool: EnginePool, *, sync: SyncConfig | None = None,
                 template: Path | None = None) -> None:
        """``template``: a migrated SQLite file to copy (the session's ``sqlite_template``); without one the
        migrations run here."""
        config = ConsoleConfig(data_dir=folder / "console",
                               database=DatabaseConfig(url=f"sqlite:///{(folder / 'console.db').as_posix()}"),
                               sync=sync or SyncConfig())
        if template is not None:
            shutil.copyfile(template, folder / "console.db")
        else:
            engine = make_engine(config.database_url)
            upgrade(engine)
            engine.dispose()
        self.ctx = ConsoleContext.open(config)
        self.ctx.engine = lambda: engine_pool  # type: ignore[method-assign]
        self.port = free_port()
        self.server: ServerThread | None = None
        self.start()
        with self.ctx.db.transaction() as session:
            for code, region in (("A001", "east"), ("B001", "east")):
                session.add(Branch(code=code, name=f"{code} 支行", region=region, timezone="Asia/Shanghai"))
            session.add(User(username="root", display_name="root", password_hash=hash_password("x" * 12),
                             role="admin", scope_kind="all"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = ServerThread(create_app(self.ctx.config, context=self.ctx), "127.0.0.1", self.port)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def admin(self) -> Principal:
        with self.ctx.db.transaction() as session:
            user = session.scalars(select(User).where(User.username == "root")).one()
            return principal_for(session, user, "token", token_name="test")

    def code(self, branch: str, name: str = "edge-1") -> str:
        actor = self.admin()
        with self.ctx.db.transaction() as session:
            row = session.scalars(select(Branch).where(Branch.code == branch)).one()
            return create_code(session, actor, row, name)[1]

    def enrol(self, name: str, photos: list[bytes], branches: tuple[str, ...], *, plates: tuple[str, ...] = ()) -> str:
        data = PersonInput(name=name, role="vip", tier="钻石", home_branch=branches[0], scope_kind="branches",
                           scope_branches=branches, plates=plates)
        consent = ConsentInput(purpose="贵宾识别", given_on=date(2026, 12, 1), operator="柜员甲")
        person = create_person(self.ctx, self.admin(), data, [PhotoUpload(p) for p in photos], consent)
        return person.id

    def erase(self, person_id: str) -> int:
        return erase_person(self.ctx, self.admin(), person_id)

    def revoke(self, edge_id: int) -> None:
        actor = self.admin()
        with self.ctx.db.transaction() as session:
            revoke(session, actor, edge_id)

    def edge(self, edge_id: int) -> Edge:
        with self.ctx.db.transaction() as session:
            edge = session.get_one(Edge, edge_id)
            session.expunge(edge)
            return edge

    def confirmed_erasures(self) -> list[str]:
        with self.ctx.db.transaction() as session:
            return [str(r.object_id) for r in session.scalars(select(AuditRow)
                                                              .where(AuditRow.action == "erasure_confirmed"))]

    def close(self) -> None:
        self.stop()
        self.ctx.close()


@pytest.fixture()
def live_console(tmp_path: Path, engine_pool: EnginePool, sqlite_template: Path) -> Iterator[LiveConsole]:
    console = LiveConsole(tmp_path, engine_pool, template=sqlite_template)
    yield console
    console.close()
