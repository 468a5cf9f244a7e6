"""The console's pages without a browser: each is served, speaks zh and en with the same keys, and fetches
nothing from outside (tests/console/browser drives them in a real chromium)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from console.context import ConsoleContext
from console.security import SESSION_COOKIE
from console.web.pages import ASSETS, PAGES, static_text

PAGE_PATHS = [*PAGES, "/persons/3f2a9c0d1e4b5a6978c0d1e2f3a4b5c6"]
MARKED = re.compile(r"/\*I18N\*/(.*?)/\*END\*/", re.S)
EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s'"]*|@import|url\(\s*['"]?(?:https?:|//)""", re.I)
# names, not addresses: the browser never fetches an XML namespace
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink", "http://www.w3.org/1999/xhtml"}


@pytest.fixture()
def backend() -> str:
    """Pages need no second database: SQLite only."""
    return "sqlite"


@pytest.fixture()
def signed_in(client: TestClient) -> Iterator[TestClient]:
    """A client that carries a session cookie (the page itself does not check it; the API does)."""
    client.cookies.set(SESSION_COOKIE, "any")
    yield client


class _Refs(HTMLParser):
    """Every src/href/action of a page, and its inline i18n table."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.i18n: str | None = None
        self._in_i18n = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.refs += [v for k, v in attrs if k in ("src", "href", "action", "poster", "srcset") and v]
        self._in_i18n = tag == "script" and found.get("id") == "i18n" and found.get("type") == "application/json"

    def handle_data(self, data: str) -> None:
        if self._in_i18n:
            self.i18n = (self.i18n or "") + data

    def handle_endtag(self, tag: str) -> None:
        self._in_i18n = False


def parse(html: str) -> _Refs:
    refs = _Refs()
    refs.feed(html)
    return refs


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_every_page_is_served_as_html_with_its_strings(signed_in: TestClient, path: str) -> None:
    res = signed_in.get(path)
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in res.headers["content-security-policy"]
    page = parse(res.text)
    assert page.i18n is not None, f"{path} has no i18n table"
    table = json.loads(page.i18n)
    assert list(table) == ["zh", "en"], "Chinese first, English the option"
    assert set(table["zh"]) == set(table["en"]), set(table["zh"]) ^ set(table["en"])
    assert table["zh"]["pageTitle"] and table["en"]["pageTitle"]
    assert all(isinstance(v, str) and v for lang in table.values() for v in lang.values())
    assert '<html lang="zh-CN">' in res.text
    assert "/static/console.js" in page.refs and "/static/console.css" in page.refs


def test_the_shared_strings_have_the_same_keys_in_both_languages() -> None:
    found = MARKED.search(static_text("console.js"))
    assert found is not None
    table = json.loads(found.group(1))
    assert list(table) == ["zh", "en"]
    assert set(table["zh"]) == set(table["en"]), set(table["zh"]) ^ set(table["en"])
    # the refusal codes of vision.enrolment all have a message of their own
    for code in ("no_face", "multiple_faces", "face_too_small", "blurred", "profile", "low_score", "duplicate",
                 "plate_taken", "no_consent", "bad_credentials", "locked"):
        assert f"err_{code}" in table["zh"], code
    assert table["zh"]["err_no_face"] == "未检测到人脸"
    assert table["zh"]["err_blurred"] == "照片模糊"
    assert table["zh"]["err_duplicate"].startswith("该人脸已登记为")


@pytest.mark.parametrize("name", [*PAGES.values(), "person.html", *ASSETS])
def test_nothing_is_fetched_from_outside(name: str) -> None:
    text = static_text(name)
    outside = [url for url in EXTERNAL.findall(text) if url not in NAMESPACES]
    assert not outside, outside
    if name.endswith(".html"):
        for ref in parse(text).refs:
            assert (ref.startswith("/") and not ref.startswith("//")) or ref.startswith(("data:", "#")), ref


@pytest.mark.parametrize("path", [p for p in PAGE_PATHS if p != "/login"])
def test_a_page_without_a_session_sends_the_browser_to_sign_in(client: TestClient, path: str) -> None:
    res = client.get(path + "?q=x", follow_redirects=False)
    assert res.status_code == 303
    assert res.headers["location"] == "/login?next=" + path.replace("/", "%2F") + "%3Fq%3Dx"


def test_login_is_public_and_home_goes_to_persons(client: TestClient) -> None:
    assert client.get("/login").status_code == 200
    res = client.get("/", follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/persons"


def test_assets_are_served_and_nothing_else_of_the_folder(client: TestClient) -> None:
    js = client.get("/static/console.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("application/javascript")
    assert client.get("/static/console.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/login.html").status_code == 404
    assert client.get("/static/..%2Fpages.py").status_code == 404


def test_pages_are_not_part_of_the_api_schema(console_ctx: ConsoleContext, client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith("/api/") and p != "/healthz"]
