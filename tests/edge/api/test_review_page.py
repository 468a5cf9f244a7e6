"""The compliance review page ``GET /review``, checked structurally (a real browser is too heavy for CI).

The page is served without a token and embeds none, both language tables have the same keys and
placeholders, every API path the script calls is a route of the app (with the method it uses), the
page stays dependency-free, and, when node is installed, its pure helpers run through node.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import get_args

import pytest
from fastapi.testclient import TestClient

from edge.api.app import create_app
from edge.api.review import VerdictFilter, review_page
from edge.review.store import MAX_NOTES
from edge.review.types import VERDICTS
from edge.runtime import EdgeRuntime
from tests.edge.conftest import ADMIN_TOKEN, ENROLLER_TOKEN, IT_TOKEN, LOBBY_TOKEN
from tests.page_helpers import balanced, i18n_tables, inline_script

# what the script does with each path of its API table
API_METHODS = {"list": "GET", "clip": "GET", "video": "GET", "verdict": "POST", "hold": "POST", "verdicts": "GET"}


@cache
def script() -> str:
    return inline_script(review_page())


def api_table() -> dict[str, str]:
    block = balanced(script(), script().index("var API = {"))
    return dict(re.findall(r"(\w+): '([^']*)'", block))


# ---------------------------------------------------------------- served

def test_the_page_is_served_without_a_token_and_embeds_none(client: TestClient, runtime: EdgeRuntime) -> None:
    # when the page is loaded without any token
    response = client.get("/review")

    # then it is the HTML page, not an auth error
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == review_page()
    assert "<title>合规审查</title>" in response.text
    # and it carries no token: neither a configured one nor a literal one in a URL
    for token in (ADMIN_TOKEN, LOBBY_TOKEN, ENROLLER_TOKEN, IT_TOKEN):
        assert token not in response.text
    assert not re.search(r"token=[\w-]", response.text)
    assert not re.search(r"Bearer [\w-]", response.text)
    # and the token never reaches the console
    assert "console." not in script()
    # and loading the page is not an API request: nothing is audited
    assert runtime.review.list_audit(limit=10) == []


def test_the_page_is_package_data() -> None:
    pyproject = (Path(__file__).parents[3] / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^"edge\.api" = \["static/\*"\]$', pyproject, re.M)


# ---------------------------------------------------------------- strings

def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    tables = i18n_tables(script())
    zh, en = tables["zh"], tables["en"]
    assert set(zh) == set(en), {"only zh": set(zh) - set(en), "only en": set(en) - set(zh)}
    for key in zh:
        assert zh[key].strip() and en[key].strip(), key
        assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key
    assert zh["denied"] == "令牌无效或没有合规审查权限"
    assert zh["auditNote"] == "播放将记入审计日志" and en["auditNote"] == "Playback is recorded in the audit log"
    assert zh["expired"] == "已过期，录像已删除"
    assert zh["unknownStaff"] == "未识别员工"
    verdicts = (zh["verdict_compliant"], zh["verdict_violation"], zh["verdict_needs_follow_up"])
    assert verdicts == ("合规", "违规", "需跟进")


def test_every_string_the_page_shows_is_in_the_tables() -> None:
    zh = i18n_tables(script())["zh"]
    used = set(re.findall(r"\bt\('(\w+)'(?! \+)", script()))  # not the prefix of 'verdict_' + value
    used |= set(re.findall(r"data-i18n=\"(\w+)\"", review_page()))
    used |= set(re.findall(r"setAttribute\('data-i18n', '(\w+)'\)", script()))
    used |= set(re.findall(r"listState = \{ key: '(\w+)'", script()))
    used |= set(re.findall(r"key: clips\.length \? '' : '(\w+)'", script()))
    # verdict names are looked up as 'verdict_' + value, for every value the API knows and the filter's none
    used |= {f"verdict_{v}" for v in get_args(VerdictFilter)}
    assert not used - set(zh), used - set(zh)
    assert "'verdict_' + v.verdict" in script()
    assert set(re.findall(r"(\w+): true", balanced(script(), script().index("var VERDICTS = {")))) == set(VERDICTS)
    # every Chinese text in the markup is marked for translation (the title is set from pageTitle, and the
    # language button reads the same in both)
    body = review_page().split("<script>")[0]
    for match in re.finditer(r">([^<>]*[\u4e00-\u9fff][^<>]*)<", body):
        tag = body[body.rfind("<", 0, match.start()):match.start()]
        assert "data-i18n=" in tag or tag in ("<title", '<button type="button" id="lang" lang="en"'), match.group(1)


def test_the_notes_limit_matches_the_api() -> None:
    assert f"var MAX_NOTES = {MAX_NOTES};" in script()
    assert f'maxlength="{MAX_NOTES}"' in review_page()


# ---------------------------------------------------------------- API paths

def test_every_api_path_the_page_calls_is_a_route(runtime: EdgeRuntime) -> None:
    table = api_table()
    assert table == {"list": "/api/clips", "clip": "/api/clips/{id}", "video": "/api/clips/{id}/video",
                     "verdict": "/api/clips/{id}/verdict", "hold": "/api/clips/{id}/hold",
                     "verdicts": "/api/clips/{id}/verdicts"}
    # no API path outside the table
    literals = set(re.findall(r"'(/api/[^']*)'", script()))
    assert literals == set(table.values())
    # the app's routes, as its OpenAPI schema lists them (included routers are not flattened into app.routes)
    schema = create_app(runtime, start_cameras=False).openapi()["paths"]
    for name, path in table.items():
        operations = schema.get(path.replace("{id}", "{clip_id}"), {})
        assert API_METHODS[name].lower() in operations, (name, path, sorted(operations))
    # and the script calls them with those methods
    js = script()
    assert "api('GET', API.list + '?'" in js and "api('GET', apiPath('clip'" in js
    assert "api('POST', apiPath('verdict'" in js and "api('POST', apiPath('hold'" in js
    assert "api('GET', apiPath('verdicts'" in js
    assert "$('#player').src = apiPath('video', clip.id) + '?token='" in js


def filters() -> list[str]:
    [block] = re.findall(r"^\s*var FILTERS = \[([^\]]*)\];$", script(), re.M)
    return re.findall(r"'(\w+)'", block)


def test_the_filters_are_by_name_and_each_is_a_query_of_the_list(runtime: EdgeRuntime) -> None:
    # the officer filters by the names shown (staff, VIP customer, camera), not by ids
    assert {"staff_name", "vip_name", "camera_name"} <= set(filters())
    assert not {"staff_id", "vip_id", "camera_id"} & set(filters())
    # each filter is a field of the form and a query parameter of GET /api/clips
    form = review_page()[review_page().index('<form id="filters"'):review_page().index("</form>")]
    assert sorted(re.findall(r'name="(\w+)"', form)) == sorted(filters())
    listing = create_app(runtime, start_cameras=False).openapi()["paths"]["/api/clips"]["get"]
    assert set(filters()) <= {p["name"] for p in listing["parameters"]}


def test_the_page_stays_dependency_free() -> None:
    page = review_page()
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet|@import|@font-face|url\(", page, re.I)
    assert not re.search(r"https?://", page), re.findall(r"https?://[^\s'\"<>)]+", page)
    assert not re.search(r"(src|href)=\"//", page)


# ---------------------------------------------------------------- node: the pure helpers

HELPERS = ("t", "str", "pad", "mmss", "apiPath", "buildQuery", "errorText", "parseTime", "localTime", "staffText",
           "customerText", "cameraText", "historyLines")

CASES = r"""
var out = {};
out.mmss = [0, 5, 65.4, 599.6, 3725, -1, NaN, null, '30'].map(mmss);
out.paths = [apiPath('video', 'c-1'), apiPath('verdict', 'a/b?c'), apiPath('hold', 'x y')];
out.query = [buildQuery({ date_from: '2026-03-01', date_to: '', staff_name: '  拜登 ', camera_name: null,
                          min_duration_s: '10', verdict: 'none' }, 50, 100), buildQuery(null, 1, 0)];
var named = { camera_id: 'counter-1', camera_name: '1号柜台', participants: { staff_id: 'a29013a9c0ffee',
  staff_name: '拜登', vip_id: 'b7e1', vip_name: '王建国', customer_track: 7 } };
var unnamed = { camera_id: 'counter-2', camera_name: null, participants: { staff_id: 'a29013a9c0ffee',
  staff_name: null, vip_id: 'ffffffffffff', vip_name: null, customer_track: 3 } };
var bare = { camera_id: 'counter-3', participants: { staff_id: null, vip_id: null, customer_track: 12 } };
var names = function () { return [named, unnamed, bare].map(function (c) {
  return [cameraText(c), staffText(c), customerText(c)]; }); };
lang = 'zh';
out.zhNames = names();
out.zhHistory = historyLines([
  { verdict: 'needs_follow_up', by: 'compliance-1', at: '2026-03-02T01:00:00Z', notes: '看不清' },
  { verdict: 'compliant', by: 'compliance-2', at: '2026-03-02T02:00:00Z', notes: '' },
  { verdict: 'great', by: 'x', at: '2026-03-02T03:00:00Z' }, null, 'junk']);
out.emptyHistory = [historyLines([]), historyLines(null)];
lang = 'en';
out.enNames = names();
out.enHistory = historyLines([{ verdict: 'violation', by: 'compliance-1', at: '2026-03-02T01:00:00Z', notes: 'n' }]);
lang = 'zh';
out.zhErrors = [
  errorText({ status: 422, data: { detail: { code: 'bad_range', message: 'date_from must be before date_to' } } }),
  errorText({ status: 404, data: { detail: 'Not Found' } }),
  errorText({ status: 502, data: null }),
  errorText('network')];
lang = 'en';
out.enError = errorText({ status: 409, data: { detail: { code: 'expired', message: 'clip x has expired' } } });
out.time = localTime('2026-03-02T01:00:00Z');
out.badTime = localTime('garbage');
process.stdout.write(JSON.stringify(out));
"""


@cache
def node_results() -> dict[str, object]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    js = script()
    parts = ["var lang = 'zh';", balanced(js, js.index("var I18N = {")) + ";",
             balanced(js, js.index("var API = {")) + ";"]
    parts += re.findall(r"^\s*var FILTERS = \[[^\]]*\];$", js, re.M)
    parts += re.findall(r"^\s*var VERDICTS = \{[^}]*\};$", js, re.M)
    for name in HELPERS:
        parts.append(balanced(js, js.index(f"function {name}(")))
    proc = subprocess.run([node, "-e", "\n".join([*parts, CASES])], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin", "TZ": "Asia/Shanghai"}, check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_helpers_in_node() -> None:
    r = node_results()
    assert r["mmss"] == ["00:00", "00:05", "01:05", "10:00", "62:05", "—", "—", "—", "—"]
    assert r["paths"] == ["/api/clips/c-1/video", "/api/clips/a%2Fb%3Fc/verdict", "/api/clips/x%20y/hold"]
    assert r["query"] == ["date_from=2026-03-01&staff_name=%E6%8B%9C%E7%99%BB&min_duration_s=10&verdict=none"
                          "&limit=50&offset=100", "limit=1&offset=0"]
    assert r["zhErrors"] == ["错误 422（bad_range）：date_from must be before date_to",
                             "错误 404（error）：Not Found", "请求失败（HTTP 502）", "无法连接到服务器，请稍后重试"]
    assert r["enError"] == "Error 409 (expired): clip x has expired"
    assert r["time"] == "2026-03-02 09:00:00"
    assert r["badTime"] == "—"


def test_names_in_node_never_show_a_person_id() -> None:
    r = node_results()
    # camera, staff and customer by name; an unnamed camera by its id; a person without a name is a role, and an
    # unknown customer is 顾客 with the track, never a hex id
    assert r["zhNames"] == [["1号柜台", "拜登", "VIP 王建国"], ["counter-2", "未识别员工", "顾客 #3"],
                            ["counter-3", "未识别员工", "顾客 #12"]]
    assert r["enNames"] == [["1号柜台", "拜登", "VIP 王建国"], ["counter-2", "Unidentified staff", "Customer #3"],
                            ["counter-3", "Unidentified staff", "Customer #12"]]
    for row in r["zhNames"] + r["enNames"]:  # type: ignore[operator]
        assert not any(re.search(r"[0-9a-f]{6,}", text) for text in row), row


def test_the_verdict_history_in_node_is_newest_first_with_who_when_and_notes() -> None:
    r = node_results()
    assert r["zhHistory"] == [
        {"line": "合规 · compliance-2 · 2026-03-02 10:00:00", "notes": "", "current": True},
        {"line": "需跟进 · compliance-1 · 2026-03-02 09:00:00", "notes": "看不清", "current": False}]
    assert r["emptyHistory"] == [[], []]
    assert r["enHistory"] == [{"line": "Violation · compliance-1 · 2026-03-02 09:00:00", "notes": "n",
                               "current": True}]


# ---------------------------------------------------------------- node: the whole page on a minimal DOM

DOM = r"""
function Node(tag, text) {
  this.tagName = tag; this.children = []; this.attrs = {}; this.className = ''; this._text = text || '';
  this.hidden = false; this.value = ''; this.listeners = {}; this.elements = {}; this.disabled = false;
  this.classList = { toggle: function () {}, add: function () {}, remove: function () {} };
}
Node.prototype.appendChild = function (c) { this.children.push(c); return c; };
Object.defineProperty(Node.prototype, 'textContent', {
  get: function () {
    return [this._text].concat(this.children.map(function (c) { return c.textContent; })).filter(Boolean).join('|');
  },
  set: function (v) { this._text = String(v); this.children = []; } });
Node.prototype.setAttribute = function (k, v) { this.attrs[k] = String(v); };
Node.prototype.getAttribute = function (k) { return k in this.attrs ? this.attrs[k] : null; };
Node.prototype.hasAttribute = function (k) { return k in this.attrs; };
Node.prototype.removeAttribute = function (k) { delete this.attrs[k]; };
Node.prototype.addEventListener = function (k, f) { this.listeners[k] = f; };
Node.prototype.scrollIntoView = Node.prototype.pause = Node.prototype.load = Node.prototype.reset = function () {};
var nodes = {};
var document = {
  title: '', documentElement: {},
  querySelector: function (sel) { return nodes[sel] || (nodes[sel] = new Node(sel)); },
  querySelectorAll: function () { return []; },
  createElement: function (tag) { return new Node(tag); },
  createTextNode: function (text) { return new Node('#text', text); } };
FILTER_NAMES.forEach(function (n) { document.querySelector('#filters').elements[n] = new Node('input'); });
var store = function () { var d = {}; return { getItem: function (k) { return k in d ? d[k] : null; },
  setItem: function (k, v) { d[k] = String(v); }, removeItem: function (k) { delete d[k]; } }; };
var window = { location: { search: '?token=t0k', pathname: '/review', hash: '#clip=c-b1' },
  history: { state: null, replaceState: function () {} }, localStorage: store(), sessionStorage: store(),
  matchMedia: function () { return { matches: false }; }, addEventListener: function () {} };
var requested = [];
function fetch(path) {
  requested.push(path);
  var body = path.indexOf('/verdicts') >= 0 ? VERDICTS_BODY : CLIPS_BODY;
  var text = function () { return Promise.resolve(JSON.stringify(body)); };
  return Promise.resolve({ status: 200, ok: true, text: text });
}
"""


def page_run(after: str) -> dict[str, object]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    clip = {"id": "c-b1", "camera_id": "counter-2", "camera_name": "2号柜台", "started_at": "2026-03-02T04:00:00Z",
            "duration_s": 90.0, "hold": False, "expired": False, "video_url": "/api/clips/c-b1/video",
            "verdict": {"id": 2, "clip_id": "c-b1", "verdict": "compliant", "notes": "", "by": "compliance-2",
                        "at": "2026-03-02T06:00:00Z"},
            "participants": {"interaction_id": "i-c-b1", "staff_track": 1, "customer_track": 4,
                             "staff_id": "a29013a9" * 4, "staff_name": "拜登", "vip_id": "b" * 32,
                             "vip_name": "王建国"}}
    verdicts = [{"id": 1, "clip_id": "c-b1", "verdict": "needs_follow_up", "notes": "看不清", "by": "compliance-1",
                 "at": "2026-03-02T05:00:00Z"}, clip["verdict"]]
    setup = (f"var FILTER_NAMES = {json.dumps(filters())}; var CLIPS_BODY = {json.dumps([clip])}; "
             f"var VERDICTS_BODY = {json.dumps(verdicts)};")
    wait = "setTimeout(function () {" + after + "}, 50);"
    proc = subprocess.run([node, "-e", "\n".join([setup, DOM, script(), wait])], capture_output=True, text=True,
                          timeout=30, env={"PATH": "/usr/bin:/bin:/usr/local/bin", "TZ": "Asia/Shanghai"},
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_the_page_lists_names_and_shows_the_verdict_history_under_the_player() -> None:
    # given a list of one clip opened by its #clip= link, when the page has loaded it
    r = page_run("process.stdout.write(JSON.stringify({ list: document.querySelector('#clips').textContent, "
                 "camera: document.querySelector('#d-camera').textContent, "
                 "staff: document.querySelector('#d-staff').textContent, "
                 "customer: document.querySelector('#d-customer').textContent, "
                 "history: document.querySelector('#history').children.map(function (li) { "
                 "return li.textContent; }), requested: requested }));")
    # then the list and the detail name the camera, the staff member and the VIP customer, never their ids
    assert "2号柜台" in str(r["list"]) and "拜登 · VIP 王建国" in str(r["list"])
    assert "a29013a9" not in str(r["list"]) and "bbbbbbbb" not in str(r["list"])
    assert (r["camera"], r["staff"], r["customer"]) == ("2号柜台", "拜登", "VIP 王建国")
    # and the whole verdict history is shown, newest first, the current one marked
    assert r["history"] == ["合规 · compliance-2 · 2026-03-02 14:00:00|当前结论",
                            "需跟进 · compliance-1 · 2026-03-02 13:00:00|看不清"]
    assert r["requested"] == ["/api/clips?limit=50&offset=0", "/api/clips/c-b1/verdicts"]


def test_the_page_filters_by_the_names_typed() -> None:
    # when the officer types a staff name and a camera name and searches
    r = page_run("var form = document.querySelector('#filters'); form.elements.staff_name.value = ' 拜登 '; "
                 "form.elements.camera_name.value = '1号柜台'; form.listeners.submit({ preventDefault: "
                 "function () {} }); process.stdout.write(JSON.stringify({ requested: requested }));")
    # then the list is asked for by those names
    query = "staff_name=%E6%8B%9C%E7%99%BB&camera_name=1%E5%8F%B7%E6%9F%9C%E5%8F%B0&limit=50&offset=0"
    assert r["requested"][-1] == f"/api/clips?{query}"  # type: ignore[index]
