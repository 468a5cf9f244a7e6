"""Pairing in a real browser: a tablet paired with a code from `smartbranch pair` works by its HttpOnly cookie
alone (no token in any URL it requests, the WebSocket's included), keeps working after a reload, and is told
to pair again once an admin revokes it."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e .[dev])")

from playwright.sync_api import BrowserContext, Page, expect

from alerts.envelope import AlertDraft, AlertType, VipArrivalPayload
from edge.api.pairing import COOKIE, Pairings
from edge.cli.main import main as cli
from edge.store.db import Person
from tests.edge.browser.conftest import PHONE, TABLET, EdgeBox, Watch, shot
from tests.edge.conftest import ADMIN_TOKEN

Contexts = Callable[..., BrowserContext]


@pytest.fixture(scope="module")
def vip(box: EdgeBox, photos_dir: object) -> Person:
    box.enrol("王丽", "staff", (photos_dir / "obama2.jpg").read_bytes())  # type: ignore[operator]
    return box.enrol("奥巴马", "vip", (photos_dir / "obama.jpg").read_bytes())  # type: ignore[operator]


def arrival(box: EdgeBox, person: Person) -> str:
    now = datetime.now(UTC)
    return box.rt.hub.publish(AlertDraft(
        type=AlertType.VIP_ARRIVAL, branch_id=box.config.branch.id, camera_id="entrance-1", person_id=person.id,
        title="VIP 到店", captured_at=now,
        payload=VipArrivalPayload(person_id=person.id, name=person.name, tier=person.tier,
                                  photo_url=f"/api/persons/{person.id}/photo", score=0.97, margin=0.2, votes=3,
                                  track_id=1, camera_name="正门", first_seen_at=now))).id


def paired_tablet(ctx: BrowserContext, box: EdgeBox, watch: Watch, name: str) -> tuple[Page, str]:
    """A tablet that opens the bare terminal URL, is told it is not paired, and pairs with a fresh code (after
    one mistyped code)."""
    watch.allow(r"POST .*/api/pair -> 401")  # the mistyped code, as a response ...
    watch.allow(r"status of 401 .*\(http://[^)]*/api/pair\)")  # ... and as chromium's console line
    page = ctx.new_page()
    page.goto(f"{box.url}/terminal")
    expect(page.locator("#notice .msg")).to_contain_text("本机尚未配对")
    expect(page.locator("#pair")).to_be_visible()
    page.fill("#pair-code", "AAAA-AAAA")
    page.click("#pair-submit")
    expect(page.locator("#pair-error")).to_have_text("配对码错误、已使用或已过期")
    # the code, from the command line, beside the running box (the data folder's lock is shared)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert cli(["pair", "--config", str(box.path), "--name", name]) == 0
    code = re.search(r"[0-9A-Z]{4}-[0-9A-Z]{4}", out.getvalue())
    assert code is not None, out.getvalue()
    page.fill("#pair-code", code.group(0).lower())
    page.click("#pair-submit")
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    expect(page.locator("#pair")).to_be_hidden()
    [pairing] = [p for p in Pairings(box.rt.store).list() if p.name == name]
    assert pairing.state == "paired"
    return page, pairing.id


def test_a_paired_tablet_works_by_its_cookie_and_no_url_carries_a_token(
        box: EdgeBox, vip: Person, contexts: Contexts, watch: Watch) -> None:
    ctx = contexts(TABLET)
    page, _ = paired_tablet(ctx, box, watch, "大堂平板1")
    # the session cookie is HttpOnly and SameSite=Strict, and the page's script cannot read it
    [cookie] = [c for c in ctx.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert COOKIE not in page.evaluate("document.cookie")
    # the card comes, with the enrolment photo fetched by the cookie, and an ack goes through
    alert_id = arrival(box, vip)
    card = page.locator(f'article[data-alert-id="{alert_id}"]')
    expect(card.locator(".name")).to_have_text("奥巴马")
    assert card.locator(".photo img").evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    card.locator("button.ack").click()
    page.locator(".who-name", has_text="王丽").click()
    expect(card.locator(".acked-info")).to_contain_text("王丽")
    # and a reload stays paired
    page.reload()
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    expect(page.locator(f'article[data-alert-id="{alert_id}"] .acked-info')).to_contain_text("王丽")
    shot(page, "terminal-paired-tablet")
    # and nothing the page requested, the WebSocket included, carried a token
    assert any("/ws/terminal" in u for u in watch.requests) and any("/photo" in u for u in watch.requests)
    assert not [u for u in watch.requests if re.search(r"[?&]token=", u)]


def test_a_revoked_tablet_is_closed_and_asked_to_pair_again(box: EdgeBox, vip: Person, contexts: Contexts,
                                                           watch: Watch) -> None:
    page, pairing_id = paired_tablet(contexts(PHONE), box, watch, "大堂平板2")
    # when the admin revokes it (until its heartbeat tells the page, a poll the page makes meanwhile, such as the
    # stranger crops, is refused with 401: that refusal is what revoking means, not a fault of the page)
    watch.allow(r"GET .*/api/stranger-crops -> 401")
    watch.allow(r"status of 401 .*\(http://[^)]*/api/stranger-crops\)")
    res = httpx.delete(f"{box.url}/api/pairings/{pairing_id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert res.status_code == 200 and res.json()["state"] == "revoked"
    # then within a heartbeat the tablet says so, stops, and offers to pair again
    expect(page.locator("#notice .msg")).to_have_text("本机的配对已被撤销，请重新配对")
    expect(page.locator("#status")).to_have_attribute("data-state", "closed")
    expect(page.locator("#pair")).to_be_visible()
    expect(page.locator("#outage")).to_be_hidden()
    shot(page, "terminal-revoked-phone")
    listed = httpx.get(f"{box.url}/api/pairings", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert {p["name"]: p["state"] for p in listed}["大堂平板2"] == "revoked"
