"""vip_arrival: once per visit, cooldown from the last sighting, VIPs only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.envelope import Alert, AlertDraft
from edge.faces.config import VipArrivalRuleConfig
from edge.faces.vip_rule import Sighting, VipArrivalRule
from edge.store.db import Person
from vision.types import Match

NOW = datetime.now(UTC)
PERSONS = {
    "vip1": Person("vip1", "张三", "钻石", "vip", "consent", "m", NOW),
    "staff1": Person("staff1", "李四", "柜员", "staff", "consent", "m", NOW),
}


def sighting(person: str | None, t: float, camera: str = "c1") -> Sighting:
    return Sighting(camera, "正门", 1, Match(person, 0.97, 0.1, 1), NOW, NOW, t)


@pytest.fixture()
def published() -> list[AlertDraft]:
    return []


def rule(published: list[AlertDraft], cooldown: float = 10.0) -> VipArrivalRule:
    def publish(draft: AlertDraft) -> Alert:
        published.append(draft)
        return Alert(**draft.model_dump(), id=str(len(published)), seq=len(published), created_at=NOW)
    return VipArrivalRule(VipArrivalRuleConfig(cooldown_s=cooldown), branch_id="b1",
                          lookup=PERSONS.get, publish=publish)


@pytest.mark.parametrize(("events", "expected"), [
    ([], 0),
    ([("identified", "vip1", 0.0)], 1),
    ([("identified", None, 0.0)], 0),
    ([("identified", "ghost", 0.0)], 0),
    ([("identified", "staff1", 0.0)], 0),
    # the same visit: seen continuously, re-identified on another track or camera
    ([("identified", "vip1", 0.0), ("seen", "vip1", 8.0), ("identified", "vip1", 15.0)], 1),
    # a new visit: gone for longer than the cooldown
    ([("identified", "vip1", 0.0), ("identified", "vip1", 10.5)], 2),
    ([("identified", "vip1", 0.0), ("seen", "vip1", 5.0), ("identified", "vip1", 15.5)], 2),
])
def test_vip_arrival_once_per_visit(events: list[tuple[str, str | None, float]], expected: int,
                                    published: list[AlertDraft]) -> None:
    r = rule(published)
    for kind, person, t in events:
        if kind == "seen" and person is not None:
            r.seen(person, t)
        else:
            r.identified(sighting(person, t))
    assert len(published) == expected


def test_alert_carries_the_card_fields(published: list[AlertDraft]) -> None:
    alert = rule(published).identified(sighting("vip1", 0.0))
    assert alert is not None
    assert alert.title == "VIP 到店"
    assert (alert.payload.name, alert.payload.tier, alert.payload.camera_name) == ("张三", "钻石", "正门")
    assert alert.payload.photo_url == "/api/persons/vip1/photo"
