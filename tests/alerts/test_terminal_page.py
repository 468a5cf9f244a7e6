"""The lobby terminal page, checked structurally (a real browser is too heavy for CI).

Both language tables must have the same keys and placeholders, every alert kind must be dispatched,
the page must stay dependency-free, and, when node is installed, the page's pure helpers (kind
dispatch, durations, the live waiting clock, service activity lines) run through node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache

import pytest

from alerts.envelope import AlertType
from alerts.ws import terminal_page
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
