"""The lobby terminal page, checked structurally (a real browser is too heavy for CI).

Both language tables must have the same keys and placeholders, every alert kind must be dispatched,
the page must stay dependency-free, and, when node is installed, the page's pure helpers (kind
dispatch, durations, the live waiting clock, service activity lines) run through node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI

from alerts.envelope import AlertDraft, AlertType, InteractionPayload
from alerts.hub import Hub
from alerts.server import ServerThread
from alerts.ws import Refusal, terminal_page, terminal_router
from edge.store.db import Store
from tests.alerts.test_hub import draft
from tests.page_helpers import balanced, i18n_tables, inline_script

CARD_KINDS = {
    "vip_arrival": "vip",
    "vip_vehicle_arrival": "vip",
    "customer_unattended": "unattended",
    "counter_unstaffed": "unstaffed",
}
FEED_KINDS = {"interaction_started", "interaction_ended"}
NEW_KEYS = {
    "unattendedTitle", "vipUnattendedTitle", "unstaffedTitle", "genericTitle", "ackGoServe", "ackNoted",
    "ackedHandled", "zone", "waitingLive", "waitingDone", "unstaffedLive", "unstaffedDone", "cropAlt",
    "cropCaption", "photoCaption", "durS", "durMS", "durHM", "feedTitle", "feedStarted", "feedEnded",
    "feedEndedNoDur", "unknownStaff", "customer", "vipCustomer", "feedExpand", "feedCollapse",
}


@cache
def script() -> str:
    return inline_script(terminal_page())


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    tables = i18n_tables(script())
    zh, en = tables["zh"], tables["en"]
    assert set(zh) == set(en), {"only zh": set(zh) - set(en), "only en": set(en) - set(zh)}
    assert set(zh) >= NEW_KEYS
    for key in zh:
        assert zh[key].strip() and en[key].strip(), key
        assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key
    assert zh["ackGoServe"] == "去接待" and en["ackGoServe"] == "On my way"
    assert zh["ackNoted"] == "已知悉" and en["ackNoted"] == "Noted"
    assert zh["ackedHandled"] == "已处理 · {by} · {time}"


def test_every_string_the_script_looks_up_is_in_the_tables() -> None:
    used = set(re.findall(r"\bt\('(\w+)'", script()))
    ack_keys = balanced(script(), script().index("function ackKeys("))
    used |= set(re.findall(r"(?<!=== )'(\w+)'", ack_keys))  # every string there but the compared layouts
    used |= set(re.findall(r"data-i18n(?:-key)?=\"(\w+)\"", terminal_page()))
    used |= set(re.findall(r"'(\w+(?:Title|Live|Done|Caption))'", script()))
    missing = used - set(i18n_tables(script())["zh"])
    assert not missing


def test_each_kind_is_dispatched() -> None:
    js = script()
    assert {t.value for t in AlertType} == set(CARD_KINDS) | FEED_KINDS, "a new kind deserves its own layout here"
    vip = re.search(r"var VIP_KINDS = \{([^}]*)\}", js)
    feed = re.search(r"var FEED_KINDS = \{([^}]*)\}", js)
    assert vip and feed
    assert set(re.findall(r"(\w+): true", vip.group(1))) == {"vip_arrival", "vip_vehicle_arrival"}
    assert set(re.findall(r"(\w+): true", feed.group(1))) == FEED_KINDS
    layout = balanced(js, js.index("function cardLayout("))
    for kind, name in CARD_KINDS.items():
        if name != "vip":
            assert f"kind === '{kind}') return '{name}'" in layout
    assert "return 'generic'" in layout
    # feed kinds leave before any card is built, chimed or counted
    on_alert = balanced(js, js.index("function onAlert("))
    assert on_alert.index("FEED_KINDS") < on_alert.index("cards.get(")


def test_the_page_stays_dependency_free() -> None:
    page = terminal_page()
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet|@import|@font-face", page, re.I)
    urls = set(re.findall(r"https?://[^\s'\"<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls


# ---------------------------------------------------------------- node: the pure helpers

HELPERS = ("t", "pad", "hm", "dateIfNotToday", "parseTime", "tierKey", "alertKind", "cardLayout", "ackKeys",
           "isEscalated", "str", "seconds", "localUrl", "duration", "makeTimer", "elapsedSeconds", "feedLine")

CASES = r"""
var out = {};
function iso(ms) { return new Date(ms).toISOString(); }
var T0 = Date.UTC(2024, 4, 6, 2, 30, 0);   // 10:30 in Asia/Shanghai
out.layout = ['vip_arrival', 'vip_vehicle_arrival', 'customer_unattended', 'counter_unstaffed', 'queue_long', '']
  .map(cardLayout);
out.feedKinds = Object.keys(FEED_KINDS).sort();
out.kind = [alertKind({ type: 'x', payload: { kind: 'y' } }), alertKind({ type: 'x', payload: null }),
  alertKind({ payload: 'oops' }), alertKind(null)];
out.keys = [ackKeys('vip_arrival'), ackKeys('customer_unattended'), ackKeys('counter_unstaffed'), ackKeys('zzz')];
out.escalated = [
  isEscalated({ payload: { kind: 'customer_unattended', escalated: true } }),
  isEscalated({ payload: { kind: 'customer_unattended', escalated: 'true' } }),
  isEscalated({ payload: { kind: 'vip_arrival', escalated: true } }),
  isEscalated({ type: 'customer_unattended', payload: null })];
out.urls = ['/api/snapshots/ab', '//evil.example/x', 'https://evil.example/x', '/\\evil', 42, null].map(localUrl);
lang = 'zh';
out.zhDur = [0, 45, 135, 245.4, 3725, null, -1, NaN].map(duration);
out.zhStarted = feedLine({ camera_id: 'c1', payload: { kind: 'interaction_started', camera_name: '1号柜台摄像头',
  staff_name: null, started_at: iso(T0 + 120000) } }, 'interaction_started');
out.zhVip = feedLine({ payload: { staff_name: '李娜', vip_name: '王建国', vip_tier: '钻石', camera_name: 'c',
  started_at: iso(T0) } }, 'interaction_started').text;
out.zhEnded = feedLine({ payload: { duration_s: 245.4, camera_name: 'c', ended_at: iso(T0) } },
  'interaction_ended').text;
out.zhEndedFromTimes = feedLine({ payload: { started_at: iso(T0), ended_at: iso(T0 + 61000) } },
  'interaction_ended').text;
out.zhGarbled = feedLine({ camera_id: 'cam-9', captured_at: 'nonsense',
  payload: { staff_name: { x: 1 }, vip_name: ['a'], started_at: 'garbage' } }, 'interaction_started');
out.zhGarbledEnded = feedLine({ payload: 'oops' }, 'interaction_ended').text;
lang = 'en';
out.enDur = [45, 135, 3725].map(duration);
out.enStarted = feedLine({ payload: { vip_name: 'Wang', vip_tier: 'Gold' } }, 'interaction_started').text;
out.enEnded = feedLine({ payload: { duration_s: 245 } }, 'interaction_ended').text;
// the waiting clock: from `since`, never below the server's count, frozen once acknowledged
var timer = makeTimer(iso(T0), 30, iso(T0 + 30000));
out.clock = [elapsedSeconds(timer, T0 + 135000), elapsedSeconds(timer, T0 + 5000)];
var skewed = makeTimer('garbage', '95', iso(T0));
out.clockNoSince = elapsedSeconds(skewed, T0 + 10000);
out.clockNothing = elapsedSeconds(makeTimer(null, null, null), T0);
timer.stopAt = T0 + 200000;
out.clockStopped = elapsedSeconds(timer, T0 + 999000);
process.stdout.write(JSON.stringify(out));
"""


@cache
def node_results() -> dict[str, object]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    js = script()
    parts = ["var lang = 'zh';", balanced(js, js.index("var I18N = {")) + ";"]
    parts += re.findall(r"^\s*var (?:VIP_KINDS|FEED_KINDS) = \{[^}]*\};$", js, re.M)
    for name in HELPERS:
        parts.append(balanced(js, js.index(f"function {name}(")))
    proc = subprocess.run([node, "-e", "\n".join([*parts, CASES])], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "TZ": "Asia/Shanghai"}, check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_kind_dispatch_in_node() -> None:
    r = node_results()
    assert r["layout"] == ["vip", "vip", "unattended", "unstaffed", "generic", "generic"]
    assert r["feedKinds"] == sorted(FEED_KINDS)
    assert r["kind"] == ["y", "x", "", ""]
    assert r["keys"] == [{"ack": "ack", "acked": "ackedInfo"}, {"ack": "ackGoServe", "acked": "ackedHandled"},
                         {"ack": "ackNoted", "acked": "ackedHandled"}, {"ack": "ackNoted", "acked": "ackedHandled"}]
    assert r["escalated"] == [True, False, False, False]
    assert r["urls"] == ["/api/snapshots/ab", "", "", "", "", ""], "the token only goes to this edge box"


def test_durations_and_service_lines_in_node() -> None:
    r = node_results()
    assert r["zhDur"] == ["0秒", "45秒", "2分15秒", "4分05秒", "1小时02分", "—", "—", "—"]
    assert r["enDur"] == ["45 s", "2 min 15 s", "1 h 02 min"]
    started = r["zhStarted"]
    assert isinstance(started, dict)
    assert started["text"] == "未识别员工 开始为 顾客 服务"
    assert started["meta"].startswith("1号柜台摄像头 · ") and started["meta"].endswith("10:32")
    assert r["zhVip"] == "李娜 开始为 王建国（钻石） 服务"
    assert r["zhEnded"] == "服务结束 · 时长 4分05秒 · 未识别员工 / 顾客"
    assert r["zhEndedFromTimes"] == "服务结束 · 时长 1分01秒 · 未识别员工 / 顾客"
    assert r["zhGarbled"] == {"text": "未识别员工 开始为 顾客 服务", "meta": "cam-9"}
    assert r["zhGarbledEnded"] == "服务结束 · 未识别员工 / 顾客"
    assert r["enStarted"] == "Unidentified staff started serving Wang (Gold)"
    assert r["enEnded"] == "Service ended · took 4 min 05 s · Unidentified staff / a customer"


def test_waiting_clock_in_node() -> None:
    r = node_results()
    assert r["clock"] == [135, 30]
    assert r["clockNoSince"] == 105
    assert r["clockNothing"] is None
    assert r["clockStopped"] == 200


# ---------------------------------------------------------------- node: the page against a real server

PAGE_TOKEN = "lobby-token-for-page-tests"
ROLELESS_TOKEN = "compliance-token-for-page-tests"


def page_authorize(token: str) -> str | Refusal:
    """The box's tokens: one lobby tablet, one known token without the lobby role."""
    if token == PAGE_TOKEN:
        return "lobby-1"
    return Refusal.FORBIDDEN if token == ROLELESS_TOKEN else Refusal.INVALID

HARNESS = r"""
const [domPath, pagePath, url, savedToken] = process.argv.slice(1);
const fs = require('fs');
const { install } = require(domPath);
const html = fs.readFileSync(pagePath, 'utf8');
const env = install(url, /<body>([\s\S]*?)<script>/.exec(html)[1]);
if (savedToken) env.window.localStorage.setItem('sb_token', savedToken);
const shown = (sel) => { const el = doc.querySelector(sel); return !el || el.hidden ? '' : el.textContent; };
const opened = [];
const NodeWebSocket = globalThis.WebSocket;
globalThis.WebSocket = class extends NodeWebSocket {
  constructor(u) { super(u); opened.push(u); }
};
(0, eval)(/<script>([\s\S]*?)<\/script>/.exec(html)[1]);
const doc = env.document;
const seqs = (sel) => doc.querySelector(sel).children.map((c) => Number(c.getAttribute('data-seq')));
let last = '';
setInterval(() => {
  const state = JSON.stringify({
    cards: seqs('#cards'), feed: seqs('#feed-list'),
    names: doc.querySelector('#cards').children.map((c) => (c.querySelector('.name') || {}).textContent || ''),
    resetNote: !(doc.querySelector('#reset-note') || { hidden: true }).hidden,
    missedNote: (doc.querySelector('#missed-note') || { hidden: true }).hidden ? ''
      : doc.querySelector('#missed-note').textContent,
    empty: !doc.querySelector('#empty').hidden,
    notice: shown('#notice'), tokenNote: shown('#token-note'),
    saved: env.window.localStorage.getItem('sb_token'),
    status: doc.querySelector('#status').getAttribute('data-state'), sockets: opened });
  if (state !== last) { last = state; process.stdout.write(state + '\n'); }
}, 50);
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.trim().split(' ');
  if (cmd === 'host') env.window.location.host = arg;
  if (cmd === 'quit') process.exit(0);
});
"""


def node_with_websocket() -> list[str]:
    """node, with the flag its version needs for a global WebSocket; skips without one."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    for flags in ([], ["--experimental-websocket"]):
        probe = subprocess.run([node, *flags, "-e", "process.stdout.write(typeof WebSocket)"], capture_output=True,
                               text=True, timeout=30, check=False)
        if probe.stdout == "function":
            return [node, *flags]
    pytest.skip("this node has no WebSocket")


class PageRun:
    """The terminal page's real script under node (a small DOM, node's WebSocket), against a real server."""

    def __init__(self, url: str, tmp: Path, saved_token: str = "") -> None:
        """``saved_token``: what the tablet's storage holds from an earlier visit."""
        page = tmp / "terminal.html"
        page.write_text(terminal_page(), encoding="utf-8")
        dom = Path(__file__).with_name("page_dom.js")
        self._proc = subprocess.Popen([*node_with_websocket(), "-e", HARNESS, str(dom), str(page), url,
                                       saved_token],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env={**os.environ, "TZ": "Asia/Shanghai"})
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.state: dict[str, Any] = {}

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)

    def wait_for(self, done: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not (self.state and done(self.state)):
            left = deadline - time.monotonic()
            if left <= 0 or self._proc.poll() is not None:
                err = self._proc.stderr.read() if self._proc.poll() is not None and self._proc.stderr else ""
                raise AssertionError(f"the page never got there; it shows {self.state} {err}")
            with contextlib.suppress(queue.Empty):
                self.state = json.loads(self._lines.get(timeout=min(left, 0.5)))
        return self.state

    def send(self, command: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.send("quit")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class Box:
    """A real store, hub and terminal WebSocket on uvicorn: the alert stream of one edge database."""

    def __init__(self, db: Path, replay_limit: int = 500) -> None:
        self.store = Store(db, branch_id="b1", cipher=Fernet(Fernet.generate_key()))
        self.hub = Hub(self.store, replay_limit=replay_limit)

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            self.hub.bind_loop(asyncio.get_running_loop())
            yield

        app = FastAPI(lifespan=lifespan)
        app.include_router(terminal_router(self.hub, page_authorize))
        self.server = ServerThread(app, "127.0.0.1", 0)
        self.server.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def publish(self, n: int, service_every: int = 0) -> None:
        for i in range(1, n + 1):
            if service_every and i % service_every == 0:
                self.hub.publish(service_draft(i))
            else:
                self.hub.publish(draft(i))


def service_draft(n: int) -> AlertDraft:
    now = datetime.now(UTC)
    return AlertDraft(type=AlertType.INTERACTION_STARTED, branch_id="b1", camera_id="counter-1", title="服务开始",
                      captured_at=now, payload=InteractionPayload(kind="interaction_started", interaction_id=f"i{n}",
                                                                  camera_name="1号柜台", staff_track=1,
                                                                  customer_track=n, started_at=now))


def test_a_tablet_of_an_old_epoch_shows_the_alerts_of_a_reset_box(tmp_path: Path) -> None:
    # given a tablet showing the alerts of a box up to seq 91 (cards and service lines)
    old = Box(tmp_path / "old.db")
    old.publish(91, service_every=10)
    page = PageRun(f"http://{old.host}/terminal?token={PAGE_TOKEN}", tmp_path)
    new: Box | None = None
    try:
        shown = page.wait_for(lambda s: s["cards"] and s["cards"][0] == 91)
        assert len(shown["cards"]) == 50 and shown["feed"] and not shown["resetNote"]
        # when the box's database is reset (alerts 1-6 stored since) and the tablet reconnects to it
        new = Box(tmp_path / "new.db")
        new.publish(6)
        page.send(f"host {new.host}")
        old.server.stop()
        # then the tablet drops the old cards and service lines and shows the six new alerts
        state = page.wait_for(lambda s: s["cards"] == [6, 5, 4, 3, 2, 1])
        assert state["names"] == [f"客户{i}" for i in (6, 5, 4, 3, 2, 1)]
        assert state["feed"] == [] and state["resetNote"] and not state["empty"]
        # and it had asked the new box with the epoch it knew, resuming just before its oldest open card (all
        # of its 50 cards were open)
        assert state["sockets"][-1].endswith(f"since={min(shown['cards']) - 1}&epoch={old.store.epoch}")
        assert min(shown["cards"]) - 1 == 35
        # and the stream goes on live from there, in the new epoch
        new.hub.publish(draft(7))
        assert page.wait_for(lambda s: s["cards"][:1] == [7])["cards"] == [7, 6, 5, 4, 3, 2, 1]
    finally:
        page.close()
        old.server.stop()
        if new is not None:
            new.server.stop()


def test_a_tablet_resumes_after_a_restart_of_the_same_box_without_a_reset(tmp_path: Path) -> None:
    # given a tablet that saw seq 3 of a box
    box = Box(tmp_path / "edge.db")
    box.publish(3)
    page = PageRun(f"http://{box.host}/terminal?token={PAGE_TOKEN}", tmp_path)
    again: Box | None = None
    try:
        page.wait_for(lambda s: s["cards"] == [3, 2, 1])
        box.server.stop()
        # when the same database comes back (a restart) with two alerts more
        box.store.engine.dispose()
        again = Box(tmp_path / "edge.db")
        again.publish(2)
        assert again.store.epoch == box.store.epoch
        page.send(f"host {again.host}")
        # then the tablet keeps its cards, adds the two, and shows no reset
        state = page.wait_for(lambda s: s["cards"] == [5, 4, 3, 2, 1])
        assert not state["resetNote"]
        # it resumed before its oldest open card, so acks made elsewhere meanwhile reach it
        assert state["sockets"][-1].endswith(f"since=0&epoch={box.store.epoch}")
    finally:
        page.close()
        box.server.stop()
        if again is not None:
            again.server.stop()


def test_a_tablet_that_missed_more_than_the_replay_holds_says_so(tmp_path: Path) -> None:
    # given a tablet that saw seq 3 of a box
    box = Box(tmp_path / "edge.db")
    box.publish(3)
    page = PageRun(f"http://{box.host}/terminal?token={PAGE_TOKEN}", tmp_path)
    again: Box | None = None
    try:
        assert page.wait_for(lambda s: s["cards"] == [3, 2, 1])["missedNote"] == ""
        box.server.stop()
        box.store.engine.dispose()
        # when the box comes back with nine alerts more than its replay limit of five holds
        again = Box(tmp_path / "edge.db", replay_limit=5)
        again.publish(9)
        page.send(f"host {again.host}")
        # then the tablet shows the newest five after its own, and says that four older ones were not replayed
        state = page.wait_for(lambda s: s["cards"][:1] == [12])
        assert state["cards"] == [12, 11, 10, 9, 8, 3, 2, 1]
        assert "4" in state["missedNote"] and "未能补发" in state["missedNote"]
    finally:
        page.close()
        box.server.stop()
        if again is not None:
            again.server.stop()


CURSOR_CASES = r"""
var out = {};
out.query = [cursorQuery(0, ''), cursorQuery(91, 'ab12'), cursorQuery(-3, 'x'), cursorQuery(NaN, null),
  cursorQuery(Infinity, 'a b'), cursorQuery(2.7, 'e'.repeat(65)), cursorQuery('12', 'ok')];
out.resets = [helloResets('', { epoch: 'a' }), helloResets('a', { epoch: 'a' }), helloResets('a', { epoch: 'b' }),
  helloResets('a', { epoch: 'a', reset: true }), helloResets('a', {}), helloResets('a', null),
  helloResets('', { reset: 'yes' })];
process.stdout.write(JSON.stringify(out));
"""


def test_the_cursor_helpers_in_node() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    js = script()
    parts = [balanced(js, js.index(f"function {name}(")) for name in ("cursorQuery", "helloResets")]
    proc = subprocess.run([node, "-e", "\n".join([*parts, CURSOR_CASES])], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["query"] == ["since=0", "since=91&epoch=ab12", "since=0&epoch=x", "since=0", "since=0", "since=2",
                          "since=0&epoch=ok"]
    assert r["resets"] == [False, False, True, True, False, False, False]
