"""The lobby terminal and its token: the page's real script under node against a real server.

A tablet must say which of three things is wrong (no token, a token the box does not know, a token
without the lobby role), and a link with a refused token must not cost a working tablet its token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.alerts.test_hub import draft
from tests.alerts.test_terminal_page import PAGE_TOKEN, ROLELESS_TOKEN, Box, PageRun


def opened(box: Box, tmp_path: Path, query: str, saved_token: str = "") -> PageRun:
    return PageRun(f"http://{box.host}/terminal{query}", tmp_path, saved_token)


def refused(state: dict[str, Any]) -> bool:
    return bool(state["notice"]) and state["status"] == "closed"


@pytest.mark.parametrize(("query", "says", "never"), [
    ("", "缺少访问令牌", "无效"),
    ("?token=not-a-token-of-this-box", "访问令牌无效", "缺少"),
    (f"?token={ROLELESS_TOKEN}", "没有大堂经理权限", "缺少"),
    (f"?token={ROLELESS_TOKEN}&lang=en", "does not have the lobby manager role", "Missing"),
    ("?token=not-a-token-of-this-box&lang=en", "not valid", "Missing"),
])
def test_the_page_tells_a_missing_an_unknown_and_a_roleless_token_apart(
        tmp_path: Path, query: str, says: str, never: str) -> None:
    # given a box with alerts
    box = Box(tmp_path / "edge.db")
    box.publish(2)
    # when a tablet with nothing saved opens the page with that link
    page = opened(box, tmp_path, query)
    try:
        # then it stops with the message for that case, shows no alerts and saves no token
        state = page.wait_for(refused)
        assert says in state["notice"] and never not in state["notice"], state["notice"]
        assert state["cards"] == [] and state["saved"] is None
    finally:
        page.close()
        box.server.stop()


@pytest.mark.parametrize("bad", ["not-a-token-of-this-box", ROLELESS_TOKEN])
def test_a_refused_link_keeps_the_tablets_working_token(tmp_path: Path, bad: str) -> None:
    # given a tablet that holds a working lobby token
    box = Box(tmp_path / "edge.db")
    box.publish(2)
    # when it opens a link whose token the box refuses
    page = opened(box, tmp_path, f"?token={bad}", saved_token=PAGE_TOKEN)
    try:
        # then it goes on with its own token: the alerts are shown and the saved token is the working one
        state = page.wait_for(lambda s: s["cards"] == [2, 1] and s["status"] == "open")
        assert state["saved"] == PAGE_TOKEN and state["notice"] == ""
        # and it says that the link's token was refused
        assert "链接中的令牌被拒绝" in state["tokenNote"]
        # and the sockets it opened used the link's token once, then the saved one
        assert f"token={bad}&" in state["sockets"][0] and f"token={PAGE_TOKEN}&" in state["sockets"][-1]
        # and the stream goes on live with it
        box.hub.publish(draft(3))
        assert page.wait_for(lambda s: s["cards"][:1] == [3])["saved"] == PAGE_TOKEN
    finally:
        page.close()
        box.server.stop()


def test_a_new_link_replaces_the_saved_token_once_the_box_accepts_it(tmp_path: Path) -> None:
    # given a tablet whose saved token the box no longer knows
    box = Box(tmp_path / "edge.db")
    box.publish(1)
    page = opened(box, tmp_path, f"?token={PAGE_TOKEN}", saved_token="revoked-token")
    try:
        # when it opens a link with a lobby token, then the alerts are shown and the link's token is saved
        state = page.wait_for(lambda s: s["cards"] == [1] and s["saved"] == PAGE_TOKEN)
        assert state["tokenNote"] == "" and state["notice"] == ""
    finally:
        page.close()
        box.server.stop()
