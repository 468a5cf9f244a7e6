"""The lobby terminal in a real browser (Debian's chromium), against a live edge box, at tablet and phone sizes.

One box serves the module. Alerts come from the box's own rules and hub (the counter rule for the waiting and
service alerts), so what the page gets is what a camera would make it get. Each test opens its own tablets.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e .[dev])")

from playwright.sync_api import BrowserContext, Page, expect

from alerts.envelope import Alert, AlertDraft, AlertType, VipArrivalPayload
from alerts.erasure import ERASED_NAME, scrub
from edge.counter.pipeline import CounterEvent, crop_jpeg
from edge.store.db import Person
from tests.edge.browser.conftest import PHONE, TABLET, Blackhole, EdgeBox, Watch, shot
from tests.edge.conftest import ENROLLER_TOKEN, LOBBY_TOKEN
from vision.attendance import UnattendedEvent
from vision.imageio import decode_image
from vision.types import Interaction

WS_FAILED = r"WebSocket connection to .* failed"  # chromium's own line for a socket that could not connect
Contexts = Callable[..., BrowserContext]


@pytest.fixture(scope="module")
def people(box: EdgeBox, photos_dir: Any) -> dict[str, Person]:
    """The VIP 奥巴马 and the staff 拜登 (the clerk), 王丽 and 张伟 (lobby managers), from real photos."""
    def read(name: str) -> bytes:
        return bytes((photos_dir / name).read_bytes())
    cast = (("奥巴马", "vip", "obama.jpg"), ("拜登", "staff", "biden.jpg"), ("王丽", "staff", "obama2.jpg"),
            ("张伟", "staff", "obama3.jpg"))
    return {name: box.enrol(name, role, read(photo)) for name, role, photo in cast}


def vip_arrival(box: EdgeBox, vip: Person) -> Alert:
    now = datetime.now(UTC)
    return box.rt.hub.publish(AlertDraft(
        type=AlertType.VIP_ARRIVAL, branch_id=box.config.branch.id, camera_id="entrance-1", person_id=vip.id,
        title="VIP 到店", captured_at=now,
        payload=VipArrivalPayload(person_id=vip.id, name=vip.name, tier=vip.tier,
                                  photo_url=f"/api/persons/{vip.id}/photo", score=0.97, margin=0.2, votes=3,
                                  track_id=1, camera_name="正门", first_seen_at=now)))


def open_terminal(ctx: BrowserContext, base: str, query: str = "", who: str = "") -> Page:
    """A tablet on the terminal page; ``who``: the name already picked for this shift on it."""
    if who:
        picked = json.dumps({"name": who})
        ctx.add_init_script(f"if (location.protocol === 'http:' && !localStorage.getItem('sb_who')) localStorage"
                            f".setItem('sb_who', JSON.stringify(Object.assign({picked}, {{at: Date.now()}})))")
    page = ctx.new_page()
    page.goto(f"{base}/terminal?token={LOBBY_TOKEN}{query}")
    return page


def connected(page: Page) -> None:
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    expect(page.locator("#outage")).to_be_hidden()


def card(page: Page, alert: Alert) -> Any:
    return page.locator(f'article[data-alert-id="{alert.id}"]')


def stored(box: EdgeBox, alert: Alert) -> Alert:
    [now] = [a for a in box.rt.store.since(alert.seq - 1) if a.id == alert.id]
    return now


def test_a_card_appears_on_two_tablets_and_an_ack_on_one_reaches_the_other(
        box: EdgeBox, people: dict[str, Person], contexts: Contexts) -> None:
    tablet = open_terminal(contexts(TABLET), box.url)
    phone = open_terminal(contexts(PHONE), box.url)
    connected(tablet)
    connected(phone)
    # when a VIP arrives
    alert = vip_arrival(box, people["奥巴马"])
    # then both show the card with the enrolment photo, the name, the tier and the camera
    for page in (tablet, phone):
        shown = card(page, alert)
        expect(shown.locator(".title")).to_have_text("VIP 到店")
        expect(shown.locator(".name")).to_have_text("奥巴马")
        expect(shown.locator(".tier")).to_have_text("钻石")
        expect(shown.locator(".camera")).to_have_text("正门")
        expect(shown.locator(".photo img")).to_have_js_property("complete", True)
        assert shown.locator(".photo img").evaluate("img => img.naturalWidth") > 0
    shot(tablet, "terminal-vip-tablet")
    shot(phone, "terminal-vip-phone")
    # when the manager taps 「已接待」 for the first time this shift: the tablet asks who is holding it
    card(tablet, alert).locator("button.ack").click()
    dialog = tablet.locator("#who-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".who-name")).to_have_text(["张伟", "拜登", "王丽"], timeout=5000)
    shot(tablet, "terminal-who-tablet")
    dialog.locator(".who-name", has_text="王丽").click()
    # then the ack names her on both tablets, and the box stored it under her name
    for page in (tablet, phone):
        expect(card(page, alert).locator(".acked-info")).to_contain_text("已接待 · 王丽")
    expect(tablet.locator("#who")).to_have_text("值班：王丽")
    assert stored(box, alert).acked_by == "王丽"
    # and the next ack of the shift asks nothing
    second = vip_arrival(box, people["奥巴马"])
    card(tablet, second).locator("button.ack").click()
    expect(card(phone, second).locator(".acked-info")).to_contain_text("王丽")
    expect(dialog).to_be_hidden()


def test_english_mode_names_the_card_and_the_action(box: EdgeBox, people: dict[str, Person],
                                                   contexts: Contexts) -> None:
    page = open_terminal(contexts(PHONE), box.url, "&lang=en")
    connected(page)
    alert = vip_arrival(box, people["奥巴马"])
    expect(card(page, alert).locator(".title")).to_have_text("VIP arrival")
    expect(card(page, alert).locator("button.ack")).to_have_text("Mark greeted")
    shot(page, "terminal-english-phone")


def test_an_ack_made_offline_is_delivered_after_reconnection_and_reconciled(
        box: EdgeBox, people: dict[str, Person], contexts: Contexts, watch: Watch) -> None:
    watch.allow(WS_FAILED)
    offline_ctx = contexts(TABLET)
    tablet = open_terminal(offline_ctx, box.url, who="王丽")
    phone = open_terminal(contexts(PHONE), box.url, who="张伟")
    first, second, third = (vip_arrival(box, people["奥巴马"]) for _ in range(3))
    waiting = box.rt.counter_rule.handle(unattended(box, people["奥巴马"], track=41, waited_s=30))
    assert waiting is not None
    for page in (tablet, phone):
        connected(page)
        expect(card(page, second)).to_be_visible()
    # when the tablet's network goes away
    offline_ctx.set_offline(True)
    # then the outage is unmistakable: a banner, the status, every card greyed and marked stale
    expect(tablet.locator("#outage")).to_be_visible()
    expect(tablet.locator("#outage .msg")).to_have_text("与服务器的连接已断开")
    expect(tablet.locator("#status")).not_to_have_attribute("data-state", "open")
    expect(card(tablet, first).locator(".stale-badge")).to_be_visible()
    assert card(tablet, first).evaluate("c => getComputedStyle(c).filter") != "none"
    # and the waiting clock stops
    clock = card(tablet, waiting).locator(".elapsed")
    frozen = clock.inner_text()
    tablet.wait_for_timeout(2200)
    assert clock.inner_text() == frozen
    # when acks are tapped while offline: they are kept, and the card says they will be sent
    card(tablet, first).locator("button.ack").click()
    card(tablet, second).locator("button.ack").click()
    expect(card(tablet, first).locator("button.ack")).to_have_text("已记录，恢复连接后自动提交")
    queued = json.loads(tablet.evaluate("localStorage.getItem('sb_ack_queue')"))
    assert [q["id"] for q in queued] == [first.id, second.id] and {q["by"] for q in queued} == {"王丽"}
    shot(tablet, "terminal-offline-tablet")
    # and meanwhile someone else greets the second VIP from another tablet, and the third, untouched here
    for alert in (second, third):
        card(phone, alert).locator("button.ack").click()
        expect(card(phone, alert).locator(".acked-info")).to_contain_text("张伟")
    # when the network is back
    offline_ctx.set_offline(False)
    connected(tablet)
    # then the offline ack is delivered under her name and reaches the other tablet
    expect(card(tablet, first).locator(".acked-info")).to_contain_text("已接待 · 王丽")
    expect(card(phone, first).locator(".acked-info")).to_contain_text("已接待 · 王丽")
    assert stored(box, first).acked_by == "王丽"
    # and the one made first elsewhere stays his; the tablet says so
    expect(card(tablet, second).locator(".acked-info")).to_contain_text("已接待 · 张伟")
    expect(card(tablet, second).locator(".ack-taken")).to_have_text("张伟 已先接待")
    assert stored(box, second).acked_by == "张伟"
    # and the one acknowledged elsewhere while this tablet was offline shows as such here too
    expect(card(tablet, third).locator(".acked-info")).to_contain_text("已接待 · 张伟")
    expect(card(tablet, third).locator(".ack-taken")).to_have_text("")
    assert json.loads(tablet.evaluate("localStorage.getItem('sb_ack_queue')")) == []


def test_a_dead_network_never_shows_connected(box: EdgeBox, people: dict[str, Person], contexts: Contexts,
                                             watch: Watch) -> None:
    watch.allow(WS_FAILED)
    relay = Blackhole(box.port)
    try:
        page = open_terminal(contexts(TABLET), f"http://127.0.0.1:{relay.port}")
        connected(page)
        # when the Wi-Fi dies (the socket stays open, nothing flows, no close ever comes)
        relay.freeze()
        # then within a few heartbeats the page says it is disconnected, and shows the outage
        expect(page.locator("#status")).not_to_have_attribute("data-state", "open", timeout=5000)
        expect(page.locator("#outage")).to_be_visible()
        expect(page.locator("#status .label")).not_to_have_text("已连接")
        shot(page, "terminal-dead-wifi-tablet")
        # when it comes back: connected again, and what was published meanwhile is there
        alert = vip_arrival(box, people["奥巴马"])
        relay.thaw()
        connected(page)
        expect(card(page, alert)).to_be_visible()
    finally:
        relay.close()


def test_a_restart_with_two_tablets_open_loses_and_duplicates_nothing(
        box: EdgeBox, people: dict[str, Person], contexts: Contexts, watch: Watch) -> None:
    watch.allow(WS_FAILED)
    tablets = [open_terminal(contexts(TABLET), box.url), open_terminal(contexts(PHONE), box.url)]
    before = [vip_arrival(box, people["奥巴马"]) for _ in range(3)]
    for page in tablets:
        expect(card(page, before[-1])).to_be_visible()
    # when the box stops, both tablets show the outage
    box.stop()
    for page in tablets:
        expect(page.locator("#outage")).to_be_visible()
    time.sleep(2)  # a long enough outage for the old back-off to have grown
    # when it starts again on the same data: both tablets are back within about a second
    box.start()
    started = time.monotonic()  # the box listens from here
    for page in tablets:
        connected(page)
    back_s = time.monotonic() - started
    assert back_s < 3, f"the tablets took {back_s:.1f} s to reconnect"
    after = [vip_arrival(box, people["奥巴马"]) for _ in range(2)]
    # then each shows every card of the log exactly once, newest first
    cards = [a for a in box.rt.store.since(0) if a.payload.kind in ("vip_arrival", "customer_unattended")]
    want = [a.id for a in sorted(cards, key=lambda a: -a.seq)][:50]
    for page in tablets:
        expect(card(page, after[-1])).to_be_visible()
        assert page.eval_on_selector_all("#cards article", "els => els.map(e => e.dataset.alertId)") == want


def unattended(box: EdgeBox, vip: Person, track: int, waited_s: float) -> CounterEvent:
    now = datetime.now(UTC)
    image = decode_image(box.rt.store.person_photo(vip.id) or b"")
    h, w = image.shape[:2]
    crop_box = (0.0, 0.0, float(w), float(h))
    return CounterEvent("customer_unattended", "counter-1", "1号柜台", now,
                        unattended=UnattendedEvent(track, vip.id, waited_s, crop_box, "等候区", time.monotonic()),
                        crop_jpeg=crop_jpeg(image, crop_box), waiting_since=now - timedelta(seconds=waited_s))


def test_the_unattended_card_closes_when_service_starts(box: EdgeBox, people: dict[str, Person],
                                                       contexts: Contexts) -> None:
    tablet = open_terminal(contexts(TABLET), box.url)
    phone = open_terminal(contexts(PHONE), box.url)
    for page in (tablet, phone):
        connected(page)
    vip, clerk = people["奥巴马"], people["拜登"]
    # given the VIP left waiting for 12.6 s
    event = unattended(box, vip, track=7, waited_s=12.6)
    waiting = box.rt.counter_rule.handle(event)
    assert waiting is not None and event.waiting_since is not None
    for page in (tablet, phone):
        expect(card(page, waiting).locator(".title")).to_have_text("VIP 无人接待")
        expect(card(page, waiting).locator(".elapsed")).to_contain_text("已等待")
    shot(tablet, "terminal-unattended-tablet")
    # when the clerk starts serving him (4.78 s later than the alert: 17.38 s after the wait began)
    started_at = event.waiting_since + timedelta(seconds=17.38)
    box.rt.counter_rule.handle(CounterEvent(
        "interaction_started", "counter-1", "1号柜台", started_at, interaction_id="i-browser-1",
        interaction=Interaction(clerk.id, 7, started_at, None, "counter-1", staff_track=3, vip_id=vip.id)))
    # then the card closes on both: who serves and since when, the clock stopped at the start (17.38 s → 17秒)
    hms = started_at.astimezone(box.config.branch.tz).strftime("%H:%M:%S")
    for page in (tablet, phone):
        shown = card(page, waiting)
        expect(shown.locator(".acked-info")).to_have_text(f"已开始服务 · 拜登 · {hms}")
        expect(shown.locator(".elapsed")).to_have_text("等待了 17秒")
        expect(shown).to_have_class(re.compile(r"\bserved\b"))
        expect(shown).to_have_class(re.compile(r"\backed\b"))
    shot(phone, "terminal-served-phone")
    # and a reloaded tablet shows it closed too (the service is replayed with the wait)
    tablet.reload()
    expect(card(tablet, waiting).locator(".acked-info")).to_have_text(f"已开始服务 · 拜登 · {hms}")


@pytest.mark.parametrize(("query", "says"), [
    ("", "缺少访问令牌"),
    ("?token=not-a-token-of-this-box", "访问令牌无效"),
    (f"?token={ENROLLER_TOKEN}", "没有大堂经理权限"),
])
def test_the_token_messages(box: EdgeBox, contexts: Contexts, query: str, says: str) -> None:
    page = contexts(PHONE).new_page()
    page.goto(f"{box.url}/terminal{query}")
    expect(page.locator("#notice .msg")).to_contain_text(says)
    expect(page.locator("#status")).to_have_attribute("data-state", "closed")
    expect(page.locator("#outage")).to_be_hidden()
    assert "token=" not in page.url
    shot(page, f"terminal-token-{'none' if not query else 'enroller' if ENROLLER_TOKEN in query else 'invalid'}")


def test_installed_it_opens_during_an_outage_with_the_last_known_cards_marked_stale(
        box: EdgeBox, people: dict[str, Person], contexts: Contexts, watch: Watch) -> None:
    watch.allow(WS_FAILED)
    watch.allow(r"Failed to load resource: net::ERR_CONNECTION_REFUSED")  # what the worker does not cache
    page = open_terminal(contexts(TABLET), box.url)
    # it is an installable app: a manifest for full screen, and a service worker that controls the page
    manifest = page.evaluate("fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())")
    assert (manifest["display"], manifest["start_url"], manifest["name"]) == ("fullscreen", "/terminal", "大堂到店提醒")
    page.evaluate("navigator.serviceWorker.ready")
    page.reload()  # from now on the worker serves the page
    assert page.evaluate("!!navigator.serviceWorker.controller")
    alert = vip_arrival(box, people["奥巴马"])
    expect(card(page, alert).locator(".photo img")).to_have_js_property("complete", True)
    page.wait_for_timeout(500)  # the cards are kept for a reload (300 ms after a change)
    # when the box is down and the tablet reloads (or the app is started)
    box.stop()
    try:
        page.reload()
        # then the page opens, with the last known card, its photo, greyed and marked stale under the banner
        shown = card(page, alert)
        expect(shown.locator(".name")).to_have_text("奥巴马")
        expect(shown.locator(".stale-badge")).to_be_visible()
        expect(page.locator("#outage")).to_be_visible()
        assert shown.locator(".photo img").evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
        shot(page, "terminal-offline-app-tablet")
    finally:
        box.start()
    # and once the box is back it is live again
    connected(page)
    later = vip_arrival(box, people["奥巴马"])
    expect(card(page, later)).to_be_visible()


def test_on_a_phone_the_newest_card_is_in_view_above_the_service_drawer(
        box: EdgeBox, people: dict[str, Person], contexts: Contexts) -> None:
    vip, clerk = people["奥巴马"], people["拜登"]
    # given a busy phone: earlier cards, service lines in the drawer it keeps open, sound not enabled yet
    for n in range(8):
        now = datetime.now(UTC)
        box.rt.counter_rule.handle(CounterEvent(
            "interaction_started", "counter-1", "1号柜台", now, interaction_id=f"i-phone-{n}",
            interaction=Interaction(clerk.id, 100 + n, now, None, "counter-1", staff_track=3)))
    for _ in range(3):
        vip_arrival(box, vip)
    ctx = contexts(PHONE)
    ctx.add_init_script("if (location.protocol === 'http:') localStorage.setItem('sb_feed', 'open')")
    page = open_terminal(ctx, box.url)
    connected(page)
    expect(page.locator("#feed")).to_have_class(re.compile(r"\bopen\b"))
    page.mouse.wheel(0, 4000)
    page.wait_for_timeout(1100)  # what comes in the first second after the hello is taken for replay, not news
    # when a VIP arrives
    alert = vip_arrival(box, vip)
    # then his card is wholly in view, below the top bar and above the drawer
    shown = card(page, alert)
    expect(shown).to_be_visible()
    page.wait_for_timeout(1500)  # the smooth scroll
    top_bar = page.locator(".topbar").bounding_box()
    drawer = page.locator("#feed").bounding_box()
    box_ = shown.bounding_box()
    shot(page, "terminal-newest-phone")
    assert top_bar and drawer and box_
    assert box_["y"] >= top_bar["y"] + top_bar["height"] - 1, (box_, top_bar)
    assert box_["y"] + box_["height"] <= drawer["y"] + 1, (box_, drawer)


def test_a_card_scrubbed_by_an_erasure_is_replaced_on_the_tablet_and_in_what_it_keeps(
        box: EdgeBox, people: dict[str, Person], contexts: Contexts, photos_dir: Any) -> None:
    erased = box.enrol("李四", "vip", (photos_dir / "biden.jpg").read_bytes())
    page = open_terminal(contexts(TABLET), box.url)
    connected(page)
    alert = vip_arrival(box, erased)
    expect(card(page, alert).locator(".name")).to_have_text("李四")
    # when an erasure scrubs the stored alert and the box sends it again, as it is now
    body = alert.model_dump(mode="json")
    assert scrub(body, {erased.id})
    box.rt.hub.refresh([Alert.model_validate(body)])
    # then the tablet shows the card without the name, and keeps nothing of it for a reload
    expect(card(page, alert).locator(".name")).to_have_text(ERASED_NAME)
    assert page.locator(f'article[data-alert-id="{alert.id}"]').count() == 1
    page.wait_for_timeout(500)  # kept 300 ms after a change
    assert "李四" not in (page.evaluate("localStorage.getItem('sb_cards')") or "")
    assert "李四" not in page.locator("#cards").inner_text()
