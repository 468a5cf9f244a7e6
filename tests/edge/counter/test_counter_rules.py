"""Counter rules: events from the counter pipeline become stored records and alerts (real SQLite store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.fernet import Fernet

from alerts.envelope import Alert, AlertDraft
from edge.counter.pipeline import CounterEvent, crop_jpeg
from edge.counter.rules import VIP_UNATTENDED_TITLE, CounterRule
from edge.review.store import ReviewStore
from edge.store.db import Person, Store
from vision.attendance import UnattendedEvent, UnstaffedEvent
from vision.imageio import decode_image
from vision.types import Interaction

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "edge.db", branch_id="b", cipher=Fernet(Fernet.generate_key()))
    yield store
    store.engine.dispose()


def enrol(store: Store, name: str, role: str) -> Person:
    with store.session() as s, s.begin():
        return store.add_person(s, name=name, tier="钻石" if role == "vip" else "柜员", role=role, consent="test",
                                photo=b"jpeg", photo_sha256="0" * 64, model_id="m")


@pytest.fixture()
def rule(store: Store) -> tuple[CounterRule, ReviewStore, list[Alert]]:
    review = ReviewStore(store)
    published: list[Alert] = []

    def publish(draft: AlertDraft) -> Alert:
        alert = store.append(draft)
        published.append(alert)
        return alert

    return CounterRule(branch_id="b", lookup=store.get_person, publish=publish, log=review, snapshots=store), \
        review, published


def event(kind: str, **fields: object) -> CounterEvent:
    return CounterEvent(kind, "counter-1", "1号柜台", T0 + timedelta(seconds=30), **fields)  # type: ignore[arg-type]


def test_a_service_is_stored_and_alerted_with_names(rule: tuple[CounterRule, ReviewStore, list[Alert]],
                                                    store: Store) -> None:
    counter, review, published = rule
    staff, vip = enrol(store, "李娜", "staff"), enrol(store, "王建国", "vip")
    started = Interaction(staff.id, 7, T0, None, "counter-1", staff_track=3, vip_id=vip.id)
    # when a start and an end arrive
    counter.handle(event("interaction_started", interaction=started, interaction_id="i1", wait_s=12.5))
    ended = Interaction(staff.id, 7, T0, T0 + timedelta(seconds=95), "counter-1", 3, vip.id, 95.0)
    counter.handle(event("interaction_ended", interaction=ended, interaction_id="i1"))
    # then both are alerted with the clerk's and the VIP's names, and the episode is stored with its wait
    assert [a.type.value for a in published] == ["interaction_started", "interaction_ended"]
    payload = published[1].payload
    assert payload.kind == "interaction_ended"
    names = (payload.staff_name, payload.vip_name, payload.vip_tier, payload.duration_s)
    assert names == ("李娜", "王建国", "钻石", 95.0)
    record = review.get_interaction("i1")
    assert record is not None and record.duration_s == 95.0 and record.wait_s == 12.5


def test_an_unknown_end_still_alerts(rule: tuple[CounterRule, ReviewStore, list[Alert]]) -> None:
    counter, _, published = rule
    ended = Interaction(None, 7, T0, T0 + timedelta(seconds=5), "counter-1", 3, None, 5.0)
    # when an end arrives for an episode the store never saw
    counter.handle(event("interaction_ended", interaction=ended, interaction_id="never-started"))
    # then the alert still goes out (the statistics miss it, and the log says so)
    assert [a.type.value for a in published] == ["interaction_ended"]


@pytest.mark.parametrize(("vip", "title", "escalated"), [(True, VIP_UNATTENDED_TITLE, True),
                                                         (False, "客户无人接待", False)])
def test_an_unattended_customer_gets_a_card_with_the_crop(rule: tuple[CounterRule, ReviewStore, list[Alert]],
                                                          store: Store, photo: object, vip: bool, title: str,
                                                          escalated: bool) -> None:
    counter, review, published = rule
    person = enrol(store, "王建国", "vip") if vip else None
    image = photo("biden.jpg")  # type: ignore[operator]
    box = (100.0, 100.0, 700.0, 1500.0)
    waited = UnattendedEvent(5, person.id if person else None, 125.0, box, "等候区", 1000.0)
    # when the pipeline reports the wait
    counter.handle(event("customer_unattended", unattended=waited, crop_jpeg=crop_jpeg(image, box),
                         waiting_since=T0))
    # then one card, escalated for a VIP, whose crop is stored encrypted and served back as a JPEG
    [alert] = published
    payload = alert.payload
    assert payload.kind == "customer_unattended"
    assert (alert.title, payload.escalated, payload.waited_s, payload.zone) == (title, escalated, 125.0, "等候区")
    assert payload.crop_url is not None
    crop = store.snapshot(payload.crop_url.rsplit("/", 1)[1])
    assert crop is not None and max(decode_image(crop).shape[:2]) == 320
    if person is not None:
        assert (payload.name, payload.photo_url) == ("王建国", f"/api/persons/{person.id}/photo")
    [stored] = review.list_unattended()
    assert stored.alert_id == alert.id and stored.waited_s == 125.0


def test_an_unstaffed_counter_gets_a_card(rule: tuple[CounterRule, ReviewStore, list[Alert]]) -> None:
    counter, _, published = rule
    counter.handle(event("counter_unstaffed", unstaffed=UnstaffedEvent("1号柜台", 310.0, 1000.0)))
    [alert] = published
    assert alert.payload.kind == "counter_unstaffed"
    assert alert.payload.unstaffed_s == 310.0
    assert alert.payload.unstaffed_since == T0 + timedelta(seconds=30 - 310)


@pytest.mark.parametrize(("box", "ok"), [((10.0, 10.0, 200.0, 300.0), True), ((10.0, 10.0, 11.0, 300.0), False),
                                         ((5000.0, 10.0, 6000.0, 300.0), False)])
def test_crops_outside_or_degenerate_give_none(box: tuple[float, float, float, float], ok: bool) -> None:
    image = np.full((480, 640, 3), 120, np.uint8)
    assert (crop_jpeg(image, box) is not None) is ok


def test_a_service_closes_the_unattended_cards_of_its_customer(
        rule: tuple[CounterRule, ReviewStore, list[Alert]], store: Store) -> None:
    counter, _, published = rule
    staff, vip = enrol(store, "拜登", "staff"), enrol(store, "奥巴马", "vip")
    box = (100.0, 100.0, 300.0, 600.0)
    # given three waits: the VIP on track 7, the VIP again on track 9 (the tracker lost him), a stranger on track 8
    for track, vip_id in ((7, vip.id), (9, vip.id), (8, None)):
        counter.handle(event("customer_unattended", unattended=UnattendedEvent(track, vip_id, 12.6, box, "等候区",
                                                                                1000.0), waiting_since=T0))
    vip_waits = [a.id for a in published if a.payload.kind == "customer_unattended" and a.person_id == vip.id]
    stranger_wait = next(a.id for a in published if a.payload.kind == "customer_unattended" and a.person_id is None)
    # when the clerk starts serving the VIP on track 9
    started = Interaction(staff.id, 9, T0 + timedelta(seconds=13), None, "counter-1", staff_track=3, vip_id=vip.id)
    counter.handle(event("interaction_started", interaction=started, interaction_id="i1"))
    # then the start names both of the VIP's waits (not the stranger's), with who serves
    start = published[-1].payload
    assert start.kind == "interaction_started"
    assert sorted(start.closes) == sorted(vip_waits) and stranger_wait not in start.closes
    assert start.staff_name == "拜登"
    # and a second service of the VIP closes nothing more; the stranger's service closes the stranger's wait
    again = Interaction(staff.id, 9, T0 + timedelta(seconds=60), None, "counter-1", staff_track=3, vip_id=vip.id)
    counter.handle(event("interaction_started", interaction=again, interaction_id="i2"))
    assert published[-1].payload.closes == []
    other = Interaction(None, 8, T0 + timedelta(seconds=70), None, "counter-1", staff_track=4)
    counter.handle(event("interaction_started", interaction=other, interaction_id="i3"))
    assert published[-1].payload.closes == [stranger_wait]
    # and an end never closes anything
    ended = Interaction(staff.id, 9, T0, T0 + timedelta(seconds=95), "counter-1", 3, vip.id, 95.0)
    counter.handle(event("interaction_ended", interaction=ended, interaction_id="i1"))
    assert published[-1].payload.closes == []
