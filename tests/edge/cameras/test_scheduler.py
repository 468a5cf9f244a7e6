"""The scheduler across cameras: priority, budgets, fairness and the drop policy, with real work in each slot
(the motion gate run on real-size frames) and real threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge.cameras.scheduler import CameraRole, FrameScheduler, SchedulerConfig
from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from tests.waiting import wait_for
from vision.engines.owner import EnginePool
from vision.motion import MotionDetector

FRAME = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)


def work(gate: MotionDetector, t: float) -> None:
    """One frame's real work: the motion gate on a 720p frame."""
    gate.update(FRAME, t)


class Camera(threading.Thread):
    """A camera's pipeline thread: asks for a slot, works on one frame in it, records the grant order."""

    def __init__(self, scheduler: FrameScheduler, camera_id: str, order: list[str], frames: int = 1,
                 urgent: bool = False) -> None:
        super().__init__(daemon=True, name=camera_id)
        self.scheduler, self.camera_id, self.order, self.frames = scheduler, camera_id, order, frames
        self.urgent = urgent
        self.gate = MotionDetector()

    def run(self) -> None:
        for i in range(self.frames):
            with self.scheduler.slot(self.camera_id, urgent=self.urgent):
                self.order.append(self.camera_id)
                work(self.gate, float(i))


def scheduler_with(cameras: dict[str, CameraRole], **config: object) -> FrameScheduler:
    scheduler = FrameScheduler(SchedulerConfig.model_validate({"slots": 1, **config}))
    for camera_id, role in cameras.items():
        scheduler.register(camera_id, role)
    return scheduler


def queue_behind_a_held_slot(scheduler: FrameScheduler, holder: str, waiting: list[str],
                             urgent: frozenset[str] = frozenset()) -> list[str]:
    """``waiting`` cameras queue while ``holder`` holds the only slot (those in ``urgent`` asking as urgent);
    returns the order they are served in."""
    order: list[str] = []
    scheduler.acquire(holder)
    threads = []
    for camera_id in waiting:
        thread = Camera(scheduler, camera_id, order, urgent=camera_id in urgent)
        thread.start()
        threads.append(thread)
        queued = len(threads)
        wait_for(lambda: len(scheduler.waiting()) == queued, timeout_s=10)  # noqa: B023 (used at once)
    scheduler.release()
    for thread in threads:
        thread.join(10)
    return order


def test_entrance_is_served_before_lobby_before_counter() -> None:
    scheduler = scheduler_with({"hold": "counter", "c1": "counter", "l1": "lobby", "e1": "entrance", "p1": "parking"})
    order = queue_behind_a_held_slot(scheduler, "hold", ["c1", "l1", "e1", "p1"])
    assert order == ["e1", "p1", "l1", "c1"]  # entrance and parking share a priority: the longer wait first


def test_a_busy_entrance_gets_the_larger_share_but_counters_never_starve() -> None:
    # given an entrance that could use every frame (a huge budget) and two counters, sharing one slot, with
    # frames that take longer than the budget window (as on an overloaded box: no camera ever looks served)
    scheduler = scheduler_with({"door": "entrance", "c1": "counter", "c2": "counter"}, window_s=0.001,
                               budget_fps={"entrance": 1000.0, "counter": 1000.0})
    order: list[str] = []
    threads = [Camera(scheduler, cam, order, frames=40) for cam in ("door", "c1", "c2")]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(order) >= 48, timeout_s=60)
    # then while all three want frames, the entrance gets the larger share (its weight's is a half: 3 : 1.5 : 1.5;
    # on a busy machine a thread is now and then not yet back in line when a slot frees, so the bound is more
    # than an equal third and more than each counter) and each counter gets at least a sixth
    first = order[:48]
    door = first.count("door")
    assert 17 <= door <= 30 and door > max(first.count("c1"), first.count("c2")), first
    assert first.count("c1") >= 8 and first.count("c2") >= 8, first
    for thread in threads:
        thread.join(30)


def test_a_camera_over_its_budget_waits_behind_one_under_it() -> None:
    # given an entrance that has used its budget (3 frames in a 60 s window) and a counter that has not
    scheduler = scheduler_with({"hold": "counter", "door": "entrance", "desk": "counter"},
                               window_s=60.0, budget_fps={"entrance": 0.05, "counter": 5.0})
    Camera(scheduler, "door", [], frames=3).run()
    # when both wait for the slot, then the counter goes first although the entrance has priority
    assert queue_behind_a_held_slot(scheduler, "hold", ["door", "desk"]) == ["desk", "door"]


def test_a_camera_over_budget_still_gets_an_idle_slot() -> None:
    scheduler = scheduler_with({"door": "entrance"}, window_s=60.0, budget_fps={"entrance": 0.05})
    order: list[str] = []
    Camera(scheduler, "door", order, frames=10).run()
    assert order == ["door"] * 10


def test_an_entrance_voting_on_an_arrival_goes_before_every_camera_under_budget() -> None:
    # given an entrance that has had more than its share (5 frames) and two counters that have had none
    scheduler = scheduler_with({"hold": "counter", "door": "entrance", "c1": "counter", "c2": "counter"},
                               urgent_roles=["entrance", "parking"])
    Camera(scheduler, "door", [], frames=5).run()
    # when it queues last, then without a vote open it goes after the counters, with one open before them
    assert queue_behind_a_held_slot(scheduler, "hold", ["c1", "c2", "door"]) == ["c1", "c2", "door"]
    assert queue_behind_a_held_slot(scheduler, "hold", ["c1", "c2", "door"], urgent=frozenset({"door"})) \
        == ["door", "c1", "c2"]
    assert {s.camera_id: s.urgent for s in scheduler.stats()}["door"] == 1


def test_urgency_counts_only_for_the_urgent_roles_and_within_the_budget() -> None:
    # a lobby is not one of the urgent roles: its urgency changes nothing
    scheduler = scheduler_with({"hold": "counter", "lobby": "lobby", "c1": "counter"}, urgent_roles=["entrance"])
    Camera(scheduler, "lobby", [], frames=5).run()
    assert queue_behind_a_held_slot(scheduler, "hold", ["c1", "lobby"], urgent=frozenset({"lobby"})) \
        == ["c1", "lobby"]
    # an entrance over its budget waits behind a counter under it, however urgent
    scheduler = scheduler_with({"hold": "counter", "door": "entrance", "desk": "counter"},
                               window_s=60.0, budget_fps={"entrance": 0.05, "counter": 5.0}, urgent_roles=["entrance"])
    Camera(scheduler, "door", [], frames=3).run()
    assert queue_behind_a_held_slot(scheduler, "hold", ["door", "desk"], urgent=frozenset({"door"})) \
        == ["desk", "door"]
    # and with no urgent roles (the default), nobody goes first
    scheduler = scheduler_with({"hold": "counter", "door": "entrance", "c1": "counter"})
    Camera(scheduler, "door", [], frames=5).run()
    assert queue_behind_a_held_slot(scheduler, "hold", ["c1", "door"], urgent=frozenset({"door"})) == ["c1", "door"]


class InLine(Camera):
    """A camera that, holding its slot, lets go only when it has held its slot longest of the cameras holding one
    and every camera of its team is in line (waiting, or holding a slot): each grant is then decided among all of
    them, in the same order however late the OS runs a thread. A camera that has had all its frames is in line."""

    def __init__(self, scheduler: FrameScheduler, camera_id: str, order: list[str], frames: int,
                 team: Team) -> None:
        super().__init__(scheduler, camera_id, order, frames)
        self.team = team

    def run(self) -> None:
        for i in range(self.frames):
            with self.scheduler.slot(self.camera_id):
                self.team.hold(self.camera_id, self.order)
                work(self.gate, float(i))
                wait_for(lambda: self.team.my_turn(self.camera_id, self.scheduler.waiting()), timeout_s=30)
                self.team.let_go(self.camera_id, last=i == self.frames - 1)


class Team:
    """The cameras of the test that hold a slot now, in the order they got it."""

    def __init__(self, cameras: set[str]) -> None:
        self.cameras = cameras
        self.holding: list[str] = []
        self.done: set[str] = set()
        self.lock = threading.Lock()

    def hold(self, camera_id: str, order: list[str]) -> None:
        with self.lock:
            self.holding.append(camera_id)
            order.append(camera_id)

    def let_go(self, camera_id: str, *, last: bool) -> None:
        with self.lock:
            self.holding.remove(camera_id)
            if last:
                self.done.add(camera_id)

    def my_turn(self, camera_id: str, waiting: list[str]) -> bool:
        with self.lock:
            return self.holding[0] == camera_id and set(self.holding) | set(waiting) | self.done >= self.cameras


def test_cameras_of_one_role_share_the_slots_evenly() -> None:
    # given four counters competing for two slots, 30 frames each, every grant made while all four are in line
    # (waiting, or holding a slot): a thread the OS runs late is never taken for a camera with nothing to do
    scheduler = scheduler_with({"h0": "counter", "h1": "counter", **{f"c{i}": "counter" for i in range(4)}},
                               slots=2, window_s=60.0)
    order: list[str] = []
    team = Team({f"c{i}" for i in range(4)})
    threads = [InLine(scheduler, f"c{i}", order, 30, team) for i in range(4)]
    scheduler.acquire("h0")
    scheduler.acquire("h1")
    for thread in threads:
        thread.start()
    wait_for(lambda: len(scheduler.waiting()) == 4, timeout_s=30)
    scheduler.release()
    scheduler.release()
    for thread in threads:
        thread.join(60)
    # then they take turns: each has one frame in every four grants, in the same order throughout
    assert sorted(order[:4]) == sorted(team.cameras)
    assert order == order[:4] * 30
    assert sorted(s.granted for s in scheduler.stats() if s.camera_id.startswith("c")) == [30] * 4


def test_never_more_work_at_once_than_slots() -> None:
    scheduler = scheduler_with({f"c{i}": "counter" for i in range(6)}, slots=2)
    busy = [0]
    peak = [0]
    lock = threading.Lock()

    def camera(camera_id: str) -> None:
        gate = MotionDetector()
        for i in range(10):
            with scheduler.slot(camera_id):
                with lock:
                    busy[0] += 1
                    peak[0] = max(peak[0], busy[0])
                work(gate, float(i))
                time.sleep(0.001)
                with lock:
                    busy[0] -= 1

    threads = [threading.Thread(target=camera, args=(f"c{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert peak[0] == 2


@pytest.mark.parametrize("bad", [{"slots": 0}, {"window_s": 0}, {"budget_fps": {"atm": 5}}, {"turbo": True},
                                 {"urgent_roles": ["atm"]}])
def test_bad_config_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SchedulerConfig.model_validate(bad)


@pytest.mark.parametrize(("setting", "expected"), [(1, 1), (0, 3)])
def test_the_box_runs_each_opencv_operation_on_the_threads_it_is_told(
        make_config: Callable[..., EdgeConfig], engine_pool: EnginePool, setting: int, expected: int) -> None:
    # given OpenCV allowed three threads (its default is one per core), when a box starts with opencv_threads
    cv2.setNumThreads(3)
    rt = EdgeRuntime(make_config(scheduler={"opencv_threads": setting}), engine=engine_pool)
    try:
        # then OpenCV runs on that many (the camera threads share the cores), and 0 leaves OpenCV's own choice
        assert cv2.getNumThreads() == expected
    finally:
        rt.stop()
        cv2.setNumThreads(1)
