"""Browser fixtures: a real console (uvicorn in a thread, SQLite in tmp_path, the session's dlib engine pool) and
Debian's chromium driven by Playwright.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (``apt-get install chromium``; CI's
.ci/run does it). Without it, or without the Playwright package, every test of this folder is skipped with the
reason. Each page a test opens is watched: console errors, uncaught exceptions, failed requests and HTTP errors
fail the test unless the test said it expects that status from that path (``watch.expect``).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    expect,
)

from console.app import create_app
from console.config import ConsoleConfig, DatabaseConfig
from console.security import hash_password
from console.tables import Branch, User
from tests.browser import chromium
from tests.waiting import free_port
from vision.engines.owner import EnginePool

ADMIN = "admin"
ADMIN_PASSWORD = "correct horse battery staple"
BRANCHES = (("SH001", "上海陆家嘴支行", "east"), ("BJ001", "北京金融街支行", "north"))



@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium per module (tests.browser says why never per session)."""
    # a loaded CI machine runs dlib slowly: a face check may take seconds, so assertions wait up to 20 s
    expect.set_options(timeout=20_000)
    try:
        with chromium() as launched:
            yield launched
    finally:
        expect.set_options(timeout=5_000)  # Playwright's default, for other folders' browser tests


@dataclass
class Console:
    url: str
    config: ConsoleConfig
    app: Any



@pytest.fixture()
def console(tmp_path: Path, engine_pool: EnginePool, sqlite_template: Path) -> Iterator[Console]:
    """A real console on a free port: SQLite in tmp_path (a copy of the session's migrated template), two
    branches, one admin, the real engine."""
    import uvicorn

    shutil.copyfile(sqlite_template, tmp_path / "console.db")
    config = ConsoleConfig(data_dir=tmp_path / "console",
                           database=DatabaseConfig(url=f"sqlite:///{(tmp_path / 'console.db').as_posix()}"))
    app = create_app(config, engine=engine_pool)
    with app.state.ctx.db.transaction() as session:
        session.add_all([Branch(code=c, name=n, region=r, timezone="Asia/Shanghai") for c, n, r in BRANCHES])
        session.add(User(username=ADMIN, display_name="管理员", password_hash=hash_password(ADMIN_PASSWORD),
                         role="admin", scope_kind="all"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="console-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console did not start")
        time.sleep(0.02)
    try:
        yield Console(f"http://127.0.0.1:{port}", config, app)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@dataclass
class Watch:
    """What went wrong in the browser: console errors, page exceptions, failed requests, HTTP errors."""

    expected: list[tuple[int, re.Pattern[str]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seen_expected: list[str] = field(default_factory=list)

    def expect(self, status: int, path: str) -> None:
        """A response ``status`` from a URL whose path matches ``path`` (a regex) is what the test provokes."""
        self.expected.append((status, re.compile(path)))

    def _expected(self, status: int, url: str) -> bool:
        path = re.sub(r"^https?://[^/]+", "", url)
        return any(s == status and p.search(path) for s, p in self.expected)

    def on_console(self, msg: ConsoleMessage) -> None:
        if msg.type != "error":
            return
        # chromium logs each HTTP error response too; on_response judges those (it knows the URL)
        if msg.text.startswith("Failed to load resource: the server responded with a status of"):
            return
        self.problems.append(f"console error: {msg.text} ({msg.location.get('url', '')})")

    def on_page_error(self, exc: Exception) -> None:
        self.problems.append(f"page error: {exc}")

    def on_request_failed(self, request: Request) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" in failure:  # a navigation or EventSource.close() cancelled it: not a failure of the app
            return
        self.problems.append(f"request failed: {request.method} {request.url}: {failure}")

    def on_response(self, response: Response) -> None:
        if response.status < 400:
            return
        what = f"{response.request.method} {response.url} -> {response.status}"
        if self._expected(response.status, response.url):
            self.seen_expected.append(what)
        else:
            self.problems.append(f"unexpected HTTP error: {what}")


@pytest.fixture()
def watch() -> Watch:
    return Watch()


@pytest.fixture()
def context(browser: Browser, console: Console, watch: Watch) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies, no localStorage) at 1280x800, its pages watched."""
    ctx = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 800}, locale="zh-CN")
    ctx.set_default_timeout(20_000)

    def watch_page(page: Page) -> None:
        page.on("console", watch.on_console)
        page.on("pageerror", watch.on_page_error)
        page.on("requestfailed", watch.on_request_failed)
        page.on("response", watch.on_response)

    ctx.on("page", watch_page)
    yield ctx
    ctx.close()
    assert not watch.problems, "\n".join(watch.problems)


@pytest.fixture()
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, username: str = ADMIN, password: str = ADMIN_PASSWORD, start: str = "/persons") -> None:
    """Open ``start`` signed out: the console sends the browser to /login, the form signs in and comes back."""
    page.goto(start)
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#submit")
    page.wait_for_url(re.compile(re.escape(start) + r"$"))
    page.wait_for_selector("#me:not(:empty)")


def csrf_headers(page: Page) -> dict[str, str]:
    """The CSRF header a script sends on an unsafe call, read from the page's cookie like console.js does."""
    token = page.evaluate("SB.cookie('sb_console_csrf')")
    assert token, "signed in, the CSRF cookie is readable by the page"
    return {"X-CSRF-Token": token}
