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
API_METHODS = {"list": "GET", "clip": "GET", "video": "GET", "verdict": "POST", "hold": "POST"}


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
                     "verdict": "/api/clips/{id}/verdict", "hold": "/api/clips/{id}/hold"}
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
    assert "$('#player').src = apiPath('video', clip.id) + '?token='" in js


def test_the_page_stays_dependency_free() -> None:
    page = review_page()
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet|@import|@font-face|url\(", page, re.I)
    assert not re.search(r"https?://", page), re.findall(r"https?://[^\s'\"<>)]+", page)
    assert not re.search(r"(src|href)=\"//", page)


# ---------------------------------------------------------------- node: the pure helpers

HELPERS = ("t", "str", "pad", "mmss", "apiPath", "buildQuery", "errorText", "parseTime", "localTime")

CASES = r"""
var out = {};
out.mmss = [0, 5, 65.4, 599.6, 3725, -1, NaN, null, '30'].map(mmss);
out.paths = [apiPath('video', 'c-1'), apiPath('verdict', 'a/b?c'), apiPath('hold', 'x y')];
out.query = [buildQuery({ date_from: '2026-03-01', date_to: '', staff_id: '  staff-a ', camera_id: null,
                          min_duration_s: '10', verdict: 'none' }, 50, 100), buildQuery(null, 1, 0)];
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
    assert r["query"] == ["date_from=2026-03-01&staff_id=staff-a&min_duration_s=10&verdict=none&limit=50&offset=100",
                          "limit=1&offset=0"]
    assert r["zhErrors"] == ["错误 422（bad_range）：date_from must be before date_to",
                             "错误 404（error）：Not Found", "请求失败（HTTP 502）", "无法连接到服务器，请稍后重试"]
    assert r["enError"] == "Error 409 (expired): clip x has expired"
    assert r["time"] == "2026-03-02 09:00:00"
    assert r["badTime"] == "—"
