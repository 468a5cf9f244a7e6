"""Person detection at a lower cadence (vision.cadence): when the person detector runs, and when the people it
found last are carried over, decided on the motion gate's result of each frame."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from vision.cadence import RUNS, CadenceConfig, PersonCadence, uncovered
from vision.motion import MotionResult

SIZE = (1280, 720)
PERSON = (500.0, 100.0, 700.0, 700.0)


def moving(*blobs: tuple[float, float, float, float]) -> MotionResult:
    """A frame where ``blobs`` moved since the previous frame."""
    return MotionResult(False, (), 0.01 if blobs else 0.0, tuple(blobs), SIZE, tuple(blobs))


def test_what_differs_from_the_background_but_did_not_move_since_the_last_frame_is_still() -> None:
    # given one person found, then a lingering difference beside them (someone who stopped, a ghost where they left)
    cadence = PersonCadence(CadenceConfig(every=3))
    cadence.decide(WHOLE)
    cadence.ran(boxes(PERSON))
    lingering = MotionResult(False, (), 0.01, ((100.0, 100.0, 200.0, 400.0),), SIZE, ())
    # then the detector does not run for it
    assert [cadence.decide(lingering) for _ in range(4)] == ["still"] * 4


WHOLE = MotionResult(True, (), 1.0, (), SIZE)


def boxes(*b: tuple[float, float, float, float]) -> np.ndarray:
    return np.asarray(b, np.float32).reshape(-1, 4)


@pytest.mark.parametrize(("blob", "people", "outside"), [
    ((550.0, 150.0, 650.0, 300.0), [PERSON], False),  # shifting where they stand
    ((100.0, 100.0, 200.0, 400.0), [PERSON], True),  # someone new, away from everyone
    ((650.0, 100.0, 850.0, 700.0), [PERSON], True),  # walking out of their box: half of the blob outside
    ((550.0, 150.0, 650.0, 300.0), [], True),  # nobody known yet
    ((0.0, 0.0, 0.0, 0.0), [PERSON], False),  # an empty blob covers nothing and leaves nothing
])
def test_a_blob_is_uncovered_when_it_lies_mostly_outside_every_person(
        blob: tuple[float, float, float, float], people: list[tuple[float, float, float, float]],
        outside: bool) -> None:
    assert uncovered([blob], boxes(*people), CadenceConfig()) is outside


def test_the_first_frame_and_each_whole_frame_refresh_run_the_detector() -> None:
    cadence = PersonCadence(CadenceConfig(every=3))
    assert cadence.decide(moving()) == "first"
    cadence.ran(boxes(PERSON))
    cadence.decide(moving((100.0, 100.0, 200.0, 400.0)))
    assert cadence.decide(WHOLE) == "whole"
    # and a frame where motion covers most of the picture (the gate looks at all of it) runs it too
    cadence.ran(boxes(PERSON))
    assert cadence.decide(MotionResult(True, (), 0.9, ((0.0, 0.0, 1280.0, 720.0),), SIZE)) == "whole"


def test_a_refresh_of_a_picture_where_nothing_moved_since_the_last_run_is_skipped() -> None:
    # given the detector ran, then only still frames
    cadence = PersonCadence(CadenceConfig(every=3))
    cadence.decide(WHOLE)
    cadence.ran(boxes(PERSON))
    for _ in range(4):
        cadence.decide(moving())
    # then the refresh carries the people over (the same picture), but not once something moved in between
    still_refresh = MotionResult(True, (), 0.0, (), SIZE)
    assert cadence.decide(still_refresh) == "still"
    cadence.decide(moving((550.0, 150.0, 650.0, 300.0)))
    assert cadence.decide(still_refresh) == "whole"


def test_motion_inside_the_people_runs_every_nth_frame_and_carries_between() -> None:
    # given one person found, then shifting inside their box on every frame
    cadence = PersonCadence(CadenceConfig(every=3))
    cadence.decide(WHOLE)
    cadence.ran(boxes(PERSON))
    decisions = []
    for _ in range(7):
        decision = cadence.decide(moving((550.0, 150.0, 650.0, 300.0)))
        if decision in RUNS:
            cadence.ran(boxes(PERSON))
        decisions.append(decision)
    # then the detector runs on every third frame and the person is carried over on the others
    assert decisions == ["carried", "carried", "due", "carried", "carried", "due", "carried"]


def test_when_the_picture_stops_moving_the_detector_runs_once_more() -> None:
    # given the detector ran on a frame where someone walked, and they then stood still
    cadence = PersonCadence(CadenceConfig(every=10))
    cadence.decide(WHOLE)
    cadence.ran(boxes(PERSON))
    assert cadence.decide(moving((100.0, 100.0, 200.0, 400.0))) == "outside"
    cadence.ran(boxes(PERSON, (100.0, 100.0, 200.0, 400.0)))
    # then it runs once on the first still frame (they came to rest elsewhere), and then carries them over
    decisions = []
    for _ in range(3):
        decisions.append(cadence.decide(moving()))
        if decisions[-1] in RUNS:
            cadence.ran(boxes(PERSON, (110.0, 100.0, 210.0, 400.0)))
    assert decisions == ["settled", "still", "still"]


def test_motion_outside_the_people_runs_at_once() -> None:
    cadence = PersonCadence(CadenceConfig(every=10))
    cadence.decide(WHOLE)
    cadence.ran(boxes(PERSON))
    assert cadence.decide(moving((100.0, 100.0, 200.0, 400.0))) == "outside"


def test_a_still_picture_carries_the_people_over() -> None:
    cadence = PersonCadence(CadenceConfig(every=2))
    cadence.decide(WHOLE)
    cadence.ran(boxes(PERSON))
    assert [cadence.decide(moving()) for _ in range(5)] == ["still"] * 5
    assert cadence.carried.tolist() == [list(PERSON)]


def test_every_one_runs_on_every_frame_with_motion() -> None:
    cadence = PersonCadence(CadenceConfig(every=1))
    cadence.decide(WHOLE)
    cadence.ran(boxes(PERSON))
    assert cadence.decide(moving((550.0, 150.0, 650.0, 300.0))) == "due"


@pytest.mark.parametrize("bad", [{"every": 0}, {"covered": 1.5}, {"pad_px": -1}, {"turbo": True}])
def test_bad_config_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CadenceConfig.model_validate(bad)
