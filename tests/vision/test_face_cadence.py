"""The counter's face cadence: who is unsettled, when a look is due, and whose heads a look is pointed at."""

from __future__ import annotations

from vision.face_cadence import FaceCadence, FaceCadenceConfig
from vision.people import PersonView


def view(track: int, *, person: str | None = None, face: int | None = None) -> PersonView:
    return PersonView(track, (10.0 * track, 0.0, 10.0 * track + 50, 100.0), None, face, person, 0.0)


def test_a_look_is_first_then_for_the_unsettled_then_at_the_interval() -> None:
    cadence = FaceCadence(FaceCadenceConfig(interval_s=0.5, max_looks=3))
    settled: set[int] = set()
    people = [view(1, face=7)]
    assert cadence.decide(people, settled.__contains__, 0.0) == "first"
    cadence.looked(people, 0.0)
    assert cadence.decide(people, settled.__contains__, 0.1) == "new"  # face track 7 is still being voted on
    cadence.looked(people, 0.1)
    settled.add(7)
    assert cadence.decide(people, settled.__contains__, 0.2) == "carried"
    assert cadence.decide(people, settled.__contains__, 0.6) == "due"
    # a known person is settled whatever their face track
    assert cadence.decide([view(2, person="p2")], settled.__contains__, 0.3) == "carried"


def test_someone_who_never_shows_a_face_is_new_only_for_max_looks() -> None:
    cadence = FaceCadence(FaceCadenceConfig(interval_s=0.5, max_looks=3))
    people = [view(1)]
    decisions = []
    for i in range(8):
        decisions.append(cadence.decide(people, lambda _: False, i * 0.1))
        if decisions[-1] != "carried":
            cadence.looked(people, i * 0.1)
    assert decisions == ["first", "new", "new"] + ["carried"] * 4 + ["due"]


def test_a_look_goes_to_the_heads_of_the_unsettled_not_looked_at_yet() -> None:
    cadence = FaceCadence(FaceCadenceConfig())
    cadence.decide([view(1)], lambda _: False, 0.0)
    cadence.looked([view(1)], 0.0)
    cadence.decide([view(1), view(2), view(3, person="p3")], lambda _: False, 0.1)
    assert cadence.heads(0.4) == [(20.0, 0.0, 70.0, 40.0)]


def test_a_person_whose_face_was_settled_stays_settled_when_their_face_track_changes() -> None:
    cadence = FaceCadence(FaceCadenceConfig(interval_s=0.5))
    settled = {7}
    cadence.decide([view(1, face=7)], settled.__contains__, 0.0)
    cadence.looked([view(1, face=7)], 0.0)
    # the face track ended between two looks and a new one (8) began on the same person
    assert cadence.decide([view(1, face=8)], settled.__contains__, 0.1) == "carried"
    cadence.looked([view(2, face=9)], 0.6)  # person track 1 ended: forgotten
    assert cadence.decide([view(1, face=8)], settled.__contains__, 0.7) == "new"
