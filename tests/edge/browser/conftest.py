"""Browser fixtures for the edge's pages: Debian's chromium driven by Playwright against a live edge box.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (``apt-get install chromium``;
.ci/run does it; ``SMARTBRANCH_CHROMIUM`` names another). Without it, or without the Playwright package, every
test of this folder is skipped with the reason. One box serves a whole module (uvicorn in a thread on a fixed
free port, so that a test can stop and restart it); each tablet is its own browser context (its own
localStorage). Every page is watched: console errors, uncaught exceptions, failed requests and HTTP errors fail
the test unless the test said it provokes them (:meth:`Watch.allow`). Screenshots go to ``var/screenshots/``
(``SMARTBRANCH_SCREENSHOTS`` moves them), which git ignores and CI keeps as artefacts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    ViewportSize,
)

from alerts.server import ServerThread
from edge.api.app import create_app
from edge.config import EdgeConfig, hash_token, load_config
from edge.runtime import EdgeRuntime
from edge.store.db import Person
from tests.browser import chromium
from tests.edge.conftest import config_dict
from tests.waiting import free_port
from vision.engines.owner import EnginePool

SCREENSHOTS = Path(os.environ.get("SMARTBRANCH_SCREENSHOTS", Path(__file__).resolve().parents[3] / "var"
                                  / "screenshots"))
TABLET: ViewportSize = {"width": 1024, "height": 768}
PHONE: ViewportSize = {"width": 390, "height": 844}
COMPLIANCE_TOKEN = "compliance-token-for-browser-tests"
HEARTBEAT_S = 0.5  # the box pings this often, so a dead link shows within 1.5 s



@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium per module (tests.browser says why never per session)."""
    with chromium() as launched:
        yield launched


class EdgeBox:
    """A real edge runtime and its app on a fixed port; :meth:`stop` and :meth:`start` restart it on the same
    data folder (the same store, so the same epoch)."""

    def __init__(self, config: EdgeConfig, engine: EnginePool, path: Path) -> None:
        self.config = config
        self.path = path  # its config file, for the command line
        self.port = config.server.port
        self._engine = engine
        self.runtime: EdgeRuntime | None = None
        self.server: ServerThread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rt(self) -> EdgeRuntime:
        assert self.runtime is not None, "the box is stopped"
        return self.runtime

    def start(self) -> None:
        self.runtime = EdgeRuntime(self.config, engine=self._engine)
        self.server = ServerThread(create_app(self.runtime, start_cameras=False), "127.0.0.1", self.port)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.runtime is not None:
            self.runtime.stop()
        self.server = self.runtime = None

    def enrol(self, name: str, role: str, photo: bytes, tier: str = "钻石") -> Person:
        store = self.rt.store
        with store.session() as s, s.begin():
            return store.add_person(s, name=name, tier=tier if role == "vip" else "柜员", role=role,
                                    consent="browser test", photo=photo,
                                    photo_sha256=hashlib.sha256(photo).hexdigest(), model_id="m")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, engine_pool: EnginePool) -> Iterator[EdgeBox]:
    """One live box for the module: an entrance camera 正门 and a counter camera 1号柜台 (not started: alerts
    come from the box's own rules, fed by the tests), a lobby, an enroller and a compliance token."""
    root = tmp_path_factory.mktemp("edge")
    (root / "frames").mkdir()
    cameras = [{"id": "entrance-1", "name": "正门", "role": "entrance", "source": {"url": f"dir:{root}/frames"}},
               {"id": "counter-1", "name": "1号柜台", "role": "counter", "source": {"url": f"dir:{root}/frames"}}]
    cfg: dict[str, Any] = config_dict(root / "data", cameras)
    cfg["auth"]["tokens"].append({"name": "compliance-1", "sha256": hash_token(COMPLIANCE_TOKEN),
                                  "roles": ["compliance"]})
    cfg["server"] = {"host": "127.0.0.1", "port": free_port(), "terminal_heartbeat_s": HEARTBEAT_S}
    path = root / "smartbranch.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    edge = EdgeBox(load_config(path), engine_pool, path)
    edge.start()
    yield edge
    edge.stop()


@dataclass
class Watch:
    """What went wrong in the browser: console errors, page exceptions, failed requests, HTTP errors."""

    allowed: list[re.Pattern[str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the pages requested, WebSockets included

    def allow(self, pattern: str) -> None:
        """A problem matching ``pattern`` (a regex) is what the test provokes (a refused token, a stopped box)."""
        self.allowed.append(re.compile(pattern))

    def _add(self, problem: str) -> None:
        if not any(p.search(problem) for p in self.allowed):
            self.problems.append(problem)

    def on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self._add(f"console error: {msg.text} ({msg.location.get('url', '')})")

    def on_page_error(self, exc: Exception) -> None:
        self._add(f"page error: {exc}")

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_request_failed(self, request: Request) -> None:
        if "ERR_ABORTED" not in (request.failure or ""):  # a navigation cancelled it
            self._add(f"request failed: {request.method} {request.url}: {request.failure}")

    def on_response(self, response: Response) -> None:
        if response.status >= 400:
            self._add(f"HTTP error: {response.request.method} {response.url} -> {response.status}")

    def attach(self, page: Page) -> None:
        page.on("console", self.on_console)
        page.on("pageerror", self.on_page_error)
        page.on("request", self.on_request)
        page.on("websocket", lambda ws: self.requests.append(ws.url))
        page.on("requestfailed", self.on_request_failed)
        page.on("response", self.on_response)


@pytest.fixture()
def watch() -> Watch:
    return Watch()


@pytest.fixture()
def contexts(browser: Browser, watch: Watch) -> Iterator[Callable[..., BrowserContext]]:
    """Makes fresh browser profiles (a tablet each: its own localStorage), every page watched; all are closed and
    the watch judged at the end of the test."""
    made: list[BrowserContext] = []

    def make(viewport: ViewportSize = TABLET, **kwargs: Any) -> BrowserContext:
        ctx = browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai", **kwargs)
        ctx.set_default_timeout(10_000)
        ctx.on("page", watch.attach)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()
    assert not watch.problems, "\n".join(watch.problems)


def shot(page: Page, name: str) -> None:
    """A screenshot for the CI artefacts (never committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


class Blackhole:
    """A TCP relay in front of the box that can go silent like a dead Wi-Fi: while frozen, connections stay open
    and nothing flows either way (no FIN, no RST), and new ones are accepted and then ignored."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._frozen = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="blackhole", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(client)
            if self._frozen.is_set():
                continue  # accepted, never answered
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self._frozen.is_set() and not self._closed:
                    self._frozen_wait()
                if self._closed:
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if not self._frozen.is_set():
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

    def _frozen_wait(self) -> None:
        threading.Event().wait(0.05)

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        """The network is back: the connections that went silent are gone (as after a real outage)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            s.close()
        self._frozen.clear()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.thaw()
