"""The console's part of ``smartbranch demo``: a console on SQLite with an admin, the demo branch, and the
demo's people enrolled from their real photos, served in a background thread.

The edge box of the demo joins this console like any box: ``ConsoleDemo.edge_code()`` makes it a one-time
registration code in-process (revoking the previous demo box of the same name, whose data folder the demo has
wiped), and the box then receives the demo's people through sync instead of enrolling them itself.

The admin's password is made once and kept in ``<workdir>/admin-password`` (mode 0600), so a second run
prints the same sign-in; an existing console folder is reused as it is (people already enrolled are not
enrolled again).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select

from alerts.server import ServerThread
from console import enrolment
from console.app import create_app
from console.branches import create_branch
from console.config import ConsoleConfig, ServerConfig
from console.context import ConsoleContext
from console.enrol_photos import PhotoUpload
from console.errors import ConsoleError
from console.migrate import upgrade
from console.security import principal_for
from console.sync.codes import create_code, revoke
from console.tables import Branch, Edge, User
from console.users import ensure_admin, user_by_name
from vault.files import write_private

ADMIN = "admin"
BRANCH_CODE, BRANCH_NAME, BRANCH_REGION = "DEMO01", "演示支行", "华东"
DEMO_EDGE = "演示边缘盒"


@dataclass(frozen=True, slots=True)
class DemoPerson:
    name: str
    tier: str
    role: str  # vip | staff
    photo: bytes


class ConsoleDemo:
    def __init__(self, ctx: ConsoleContext, server: ServerThread, url: str) -> None:
        self.ctx, self.server, self.url = ctx, server, url

    def stop(self) -> None:
        self.server.stop()
        self.ctx.close()

    def edge_code(self, name: str = DEMO_EDGE) -> str:
        """A one-time code for the demo's edge box at the demo branch. A box of that name registered by an earlier
        run is revoked first (the demo starts its box on a fresh data folder, so the old token is gone anyway)."""
        with self.ctx.db.transaction() as session:
            user = user_by_name(session, ADMIN)
            assert isinstance(user, User)
            actor = principal_for(session, user, "session")
            branch = session.scalars(select(Branch).where(Branch.code == BRANCH_CODE)).one()
            for edge_id in session.scalars(select(Edge.id).where(Edge.branch_id == branch.id, Edge.name == name,
                                                                 Edge.revoked_at.is_(None))).all():
                revoke(session, actor, edge_id)
            return create_code(session, actor, branch, name)[1]


def _password(workdir: Path) -> str:
    path = workdir / "admin-password"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(12)
    write_private(path, (password + "\n").encode("utf-8"))
    return password


def _enrol(ctx: ConsoleContext, people: list[DemoPerson]) -> list[str]:
    """Enrol ``people`` at the demo branch (each once: their external id is demo-<n>); the names enrolled now."""
    with ctx.db.transaction() as session:
        if session.query(Branch).filter_by(code=BRANCH_CODE).one_or_none() is None:
            create_branch(session, BRANCH_CODE, BRANCH_NAME, BRANCH_REGION, "Asia/Shanghai")
        user = user_by_name(session, ADMIN)
        assert isinstance(user, User)
        actor = principal_for(session, user, "session")
    enrolled = []
    for n, person in enumerate(people, 1):
        external_id = f"demo-{n}"
        if enrolment.person_id_by_external_id(ctx, external_id) is not None:
            continue
        data = enrolment.PersonInput(name=person.name, role=person.role, tier=person.tier,
                                     home_branch=BRANCH_CODE,
                                     scope_kind="all" if person.role == "vip" else "branches",
                                     external_id=external_id)
        consent = enrolment.ConsentInput("演示：VIP 到店问候 / demo: VIP greeting", date.today(), "演示操作员")
        enrolment.create_person(ctx, actor, data, [PhotoUpload(person.photo, field=external_id)], consent)
        enrolled.append(person.name)
    return enrolled


def start_console_demo(workdir: Path, *, port: int, people: list[DemoPerson], lang: str = "zh") -> ConsoleDemo:
    """Prepare the demo console in ``workdir``, start serving it on 127.0.0.1:``port`` and print how to sign in."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = ConsoleConfig(data_dir=workdir, server=ServerConfig(port=port))
    ctx = ConsoleContext.open(config)
    try:
        upgrade(ctx.db.engine)
        password = _password(workdir)
        ensure_admin(ctx, ADMIN, password)
        try:
            enrolled = _enrol(ctx, people)
        except ConsoleError as exc:  # a demo photo refused: the console still serves, and says why
            enrolled = []
            print(f"控制台演示登记失败 / console demo enrolment refused: {exc.code}: {exc.message}", flush=True)
        server = ServerThread(create_app(config, context=ctx), config.server.host, port)
        server.start()
    except BaseException:
        ctx.close()
        raise
    url = f"http://{config.server.host}:{server.port}/"
    if lang == "en":
        print(f"Central console: {url}  (sign in as {ADMIN} / {password}; "
              f"enrolled now: {', '.join(enrolled) or 'nobody new'})", flush=True)
    else:
        print(f"中心控制台：{url}  （管理员登录：{ADMIN} / {password}；本次登记：{'、'.join(enrolled) or '无新增'}）\n"
              f"Central console: {url}  (sign in as {ADMIN} / {password})", flush=True)
    return ConsoleDemo(ctx, server, url)
