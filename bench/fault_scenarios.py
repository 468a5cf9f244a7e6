"""The fault suite's scenarios. Each runs a live service with cameras, injects one fault, restarts the
service and checks it (:mod:`bench.fault_run`), and returns one result row."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.fault_checks import Findings, SmallDisk, clean_refusal, fill, moved_away, refusal_message
from bench.fault_run import (
    ScenarioAborted,
    Suite,
    after_fault,
    check_alive,
    restart_and_check,
    result,
    start,
    stop,
    wait_receipts,
)
from bench.live import LiveService, counter_settings, entrance_camera, new_key
from bench.terminals import Fleet, Receipt, Terminal, make_fleet
from edge.demo.counter_demo import counter_camera

Scenario = Callable[[Suite], dict[str, Any]]
FIRST_ALERT_S = 30.0


def _fleet(svc: LiveService, on_receipt: Callable[[Terminal, Receipt], None] | None = None) -> Fleet:
    fleet = make_fleet(svc.terminal_tokens, svc.ws_url, on_receipt=on_receipt)
    fleet.start()
    return fleet


@contextmanager
def _scenario(svc: LiveService, fleet: Fleet) -> Iterator[None]:
    """A scenario's body: an aborted one just ends (its findings say why), and however it ends the terminals
    stop and a service still running is killed."""
    try:
        yield
    except ScenarioAborted:
        pass
    finally:
        fleet.stop()
        if svc.alive():
            svc.kill9()


def _enrol(svc: LiveService, photo: tuple[str, bytes], n: int) -> httpx.Response:
    name, data = photo
    return svc.request("POST", "/api/persons", files={"photo": (name, data)}, timeout=60,
                       data={"name": f"故障测试{n}", "tier": "金卡", "consent": "故障测试：示例同意记录"})


def _code(resp: httpx.Response) -> str:
    if resp.status_code < 400:
        return str(resp.status_code)
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return f"{resp.status_code} (not JSON)"
    return f"{resp.status_code} {detail.get('code') if isinstance(detail, dict) else detail}"


def kill_during_enrolment(suite: Suite) -> dict[str, Any]:
    fault = "kill -9 while an enrolment request is being processed (a camera running)"
    f = Findings()
    svc = suite.service("kill-enrolment", [entrance_camera(1, suite.scene.entrance_video)])
    fleet = _fleet(svc)
    with _scenario(svc, fleet):
        start(svc, f, "first start")
        f.notes["alert_before_fault"] = wait_receipts(fleet, 1, FIRST_ALERT_S)
        warm = []
        for n in range(2):  # the first request is slower (cold caches); time the second
            t0 = time.perf_counter()
            answer = _code(_enrol(svc, suite.photos[n], n))
            took = time.perf_counter() - t0
            warm.append({"status": answer, "seconds": round(took, 3)})
        f.notes["enrolments_before_the_kill"] = warm
        outcome: dict[str, str] = {}
        # the writes come at the end of a request: aim late, and earlier each time the request beat the kill
        for attempt, fraction in enumerate((0.9, 0.75, 0.6, 0.45), start=1):
            photo = suite.photos[(1 + attempt) % len(suite.photos)]
            thread = threading.Thread(target=_enrol_into, args=(svc, photo, attempt, outcome), daemon=True)
            thread.start()
            time.sleep(took * fraction)
            if thread.is_alive() or attempt == 4:
                break
        if not check_alive(svc, f, "during the enrolments, before the kill"):
            raise ScenarioAborted("the service died before the kill")
        killed_at = datetime.now(UTC)
        svc.kill9()
        thread.join(30)
        f.notes["killed_request"] = {"attempt": attempt, "delay_fraction": fraction,
                                     "answer": outcome.get("answer", "none")}
        time.sleep(0.5)
        before = fleet.received()
        after_fault(f, svc, killed_at)
        restart_and_check(f, svc, fleet, before, killed_at)
        stop(svc, f, "stop after the checks")
    return result("kill9_enrolment", fault, f)


def _enrol_into(svc: LiveService, photo: tuple[str, bytes], n: int, out: dict[str, str]) -> None:
    try:
        out["answer"] = _code(_enrol(svc, photo, n))
    except httpx.HTTPError as exc:
        out["answer"] = f"no answer ({type(exc).__name__}): in flight at the kill"


def kill_during_clip_write(suite: Suite) -> dict[str, Any]:
    fault = "kill -9 while a counter camera's clip is being written"
    frames = suite.scene.counter_frames
    if frames is None:
        return result("kill9_clip_write", fault, Findings(),
                      skipped="the person detector is not installed, so no counter camera can run")
    f = Findings()
    svc = suite.service("kill-clip", [entrance_camera(1, suite.scene.entrance_video), counter_camera(frames)],
                        extra=counter_settings())
    fleet = _fleet(svc)
    with _scenario(svc, fleet):
        start(svc, f, "first start")
        clips = svc.data_dir / "clips"
        deadline = time.monotonic() + 60.0
        trigger = None
        while time.monotonic() < deadline and trigger is None:
            parts = list(clips.rglob("*.part")) if clips.is_dir() else []
            if parts:
                trigger = f"{parts[0].name} on disk ({parts[0].stat().st_size} bytes)"
            time.sleep(0.05)
        if trigger is None:
            f.problems.append("no clip was being written within 60 s (no .part file appeared)")
        if not check_alive(svc, f, "before the kill"):
            raise ScenarioAborted("the service died before the kill")
        killed_at = datetime.now(UTC)
        svc.kill9()
        f.notes["kill_trigger"] = trigger
        time.sleep(0.5)
        before = fleet.received()
        after_fault(f, svc, killed_at)
        restart_and_check(f, svc, fleet, before, killed_at, settle_s=6.0)
        stop(svc, f, "stop after the checks")
    return result("kill9_clip_write", fault, f)


def kill_during_alert_push(suite: Suite) -> dict[str, Any]:
    fault = "kill -9 the moment the first terminal receives a live alert (the others may not have it yet)"
    f = Findings()
    cameras = [entrance_camera(i, suite.scene.entrance_video) for i in (1, 2)]
    svc = suite.service("kill-push", cameras, terminals=10)
    killed = threading.Event()

    def kill_on_first(_terminal: Terminal, receipt: Receipt) -> None:
        if not receipt.replayed and not killed.is_set() and svc.alive():
            killed.set()
            svc.kill9()

    fleet = _fleet(svc, on_receipt=kill_on_first)
    with _scenario(svc, fleet):
        start(svc, f, "first start")
        if not killed.wait(FIRST_ALERT_S * 2):
            check_alive(svc, f, "waiting for a live alert")
            f.problems.append("no live alert arrived, so nothing was killed during a push")
            raise ScenarioAborted("no alert")
        killed_at = datetime.now(UTC)
        have = sum(1 for t in fleet.terminals if t.receipts)
        time.sleep(0.5)
        before = fleet.received()
        f.notes["terminals_with_the_alert_at_the_kill"] = f"{have} of {len(fleet.terminals)}"
        f.crash_if_unclean("before the kill", svc.exit_info(), expected_signal="SIGKILL")
        after_fault(f, svc, killed_at)
        restart_and_check(f, svc, fleet, before, killed_at)
        stop(svc, f, "stop after the checks")
    return result("kill9_alert_push", fault, f)


def _camera(svc: LiveService, camera_id: str) -> dict[str, Any]:
    health = svc.request("GET", "/healthz", timeout=5).json()
    return next((c for c in health.get("cameras", []) if c["id"] == camera_id), {})


def camera_file_vanishes(suite: Suite) -> dict[str, Any]:
    fault = "the video file of one of two cameras is removed while it plays, then put back"
    f = Findings()
    own = suite.root / "vanish-camera.mp4"
    shutil.copyfile(suite.scene.entrance_video, own)
    svc = suite.service("camera-vanishes", [entrance_camera(1, own), entrance_camera(2, suite.scene.entrance_video)])
    fleet = _fleet(svc)
    with _scenario(svc, fleet):
        start(svc, f, "first start")
        wait_receipts(fleet, 1, FIRST_ALERT_S)
        other_before = _camera(svc, "entrance-2").get("processed", 0)
        with moved_away(own):
            t0 = time.monotonic()
            state: dict[str, Any] = {}
            while time.monotonic() - t0 < 40 and check_alive(svc, f, "while the file was gone"):
                state = _camera(svc, "entrance-1")
                if not state.get("healthy", True):
                    break
                time.sleep(0.5)
            f.notes["reported"] = {"after_s": round(time.monotonic() - t0, 1), "state": state.get("state"),
                                   "error": state.get("error")}
            if state.get("healthy", True):
                f.problems.append("/healthz did not report the camera whose file vanished within 40 s")
        if not check_alive(svc, f, "after the file came back"):
            raise ScenarioAborted("the service died")
        other_after = _camera(svc, "entrance-2").get("processed", 0)
        f.notes["other_camera_frames_meanwhile"] = other_after - other_before
        if other_after <= other_before:
            f.problems.append("the other camera stopped processing while one file was gone")
        t1 = time.monotonic()
        while time.monotonic() - t1 < 25 and _camera(svc, "entrance-1").get("state") != "ok":
            time.sleep(0.5)
        recovered = _camera(svc, "entrance-1").get("state") == "ok"
        f.notes["recovered_after_s"] = round(time.monotonic() - t1, 1) if recovered else None
        if not recovered:
            f.problems.append("the camera did not recover within 25 s of its file coming back")
        before = fleet.received()
        stop(svc, f, "stop")
        restart_and_check(f, svc, fleet, before, None)
        stop(svc, f, "stop after the checks")
    return result("camera_file_vanishes", fault, f)


CLEAN_FULL_DISK = (503, 507)


def full_disk(suite: Suite) -> dict[str, Any]:
    fault = "the data folder's filesystem fills up while cameras run and enrolments arrive"
    f = Findings()
    svc = suite.service("full-disk", [entrance_camera(1, suite.scene.entrance_video)], seed=False)
    with SmallDisk(svc.data_dir, 8) as disk:
        if disk.method is None:
            return result("full_disk", fault, f, skipped="cannot mount a small filesystem: " + "; ".join(disk.why_not))
        f.notes["filesystem"] = disk.method
        suite.seed(svc)
        fleet = _fleet(svc)
        with _scenario(svc, fleet):
            _full_disk_run(suite, svc, fleet, f)
    return result("full_disk", fault, f)


def _full_disk_run(suite: Suite, svc: LiveService, fleet: Fleet, f: Findings) -> None:
    start(svc, f, "first start")
    wait_receipts(fleet, 1, FIRST_ALERT_S)
    f.notes["filler_bytes"] = fill(svc.data_dir)
    answers = []
    for n, photo in enumerate(suite.photos[:3]):
        try:
            resp = _enrol(svc, photo, n)
        except httpx.HTTPError as exc:
            answers.append(f"no answer ({type(exc).__name__})")
            continue
        answers.append(_code(resp))
        unclean = resp.status_code >= 500 and resp.status_code not in CLEAN_FULL_DISK
        if unclean or "(not JSON)" in answers[-1]:
            f.problems.append(f"an enrolment on a full disk answered {answers[-1]}, not a clean refusal "
                              f"({' or '.join(map(str, CLEAN_FULL_DISK))} with a detail code)")
    f.notes["enrolments_on_full_disk"] = answers
    time.sleep(16.0)  # one loop of the video: the VIP walks in again, and the alert cannot be stored
    if not check_alive(svc, f, "with the disk full"):
        raise ScenarioAborted("the service died on a full disk")
    health = svc.request("GET", "/healthz", timeout=10)
    f.notes["healthz_on_full_disk"] = health.status_code
    errors = [ln for ln in svc.log_text().splitlines() if "Error" in ln and not ln.startswith(" ")]
    f.notes["error_lines_on_full_disk"] = sorted(set(errors))[:8]
    for filler in svc.data_dir.glob("filler*.bin"):
        filler.unlink()
    after = _enrol(svc, suite.photos[0], 0)
    f.notes["enrolment_after_space_freed"] = _code(after)
    if after.status_code not in (201, 409):
        f.problems.append(f"after space was freed an enrolment answered {_code(after)}")
    before = fleet.received()
    fault_at = datetime.now(UTC)
    stop(svc, f, "stop")
    restart_and_check(f, svc, fleet, before, fault_at)
    stop(svc, f, "stop after the checks")


def _run_then_stop(svc: LiveService, fleet: Fleet, f: Findings) -> dict[str, int]:
    start(svc, f, "first start")
    if not wait_receipts(fleet, 1, FIRST_ALERT_S):
        f.notes["alert_before_fault"] = False
    time.sleep(0.5)
    received = fleet.received()
    stop(svc, f, "stop before the fault")
    return received


def _expect_refusal(svc: LiveService, f: Findings, *, key: str | None, words: tuple[str, ...]) -> bool:
    exit_ = svc.start(key=key)
    if exit_ is None:
        f.problems.append("the service started when it should have refused")
        return False
    f.crash_if_unclean("refusal", exit_)
    message = refusal_message(exit_)
    f.notes["refusal"] = {"exit_code": exit_.code, "message": message}
    if not clean_refusal(exit_):
        return False
    if not any(w.lower() in exit_.log_tail.lower() for w in words):
        f.problems.append(f"the refusal does not say why (none of {', '.join(words)}): {message}")
        return False
    return True


def wrong_key(suite: Suite) -> dict[str, Any]:
    fault = "SMARTBRANCH_DATA_KEY changed between two runs"
    f = Findings()
    svc = suite.service("wrong-key", [entrance_camera(1, suite.scene.entrance_video)])
    fleet = _fleet(svc)
    refused = False
    with _scenario(svc, fleet):
        before = _run_then_stop(svc, fleet, f)
        refused = _expect_refusal(svc, f, key=new_key(), words=("key", "密钥"))
        if svc.alive():
            vip = svc.request("GET", "/api/persons").json()
            if vip:
                photo = svc.request("GET", f"/api/persons/{vip[0]['id']}/photo")
                f.notes["photo_with_wrong_key"] = photo.status_code
            f.notes["enrolment_with_wrong_key"] = _code(_enrol(svc, suite.photos[0], 0))
            stop(svc, f, "stop of the wrong-key run")
        restart_and_check(f, svc, fleet, before, None)  # the right key again: everything must still be there
        stop(svc, f, "stop after the checks")
    return result("wrong_key", fault, f, expect="refuse", refused=refused)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*")) if p.is_file()}


def deleted_database(suite: Suite) -> dict[str, Any]:
    fault = "edge.db (with its -wal and -shm) deleted between two runs"
    f = Findings()
    svc = suite.service("deleted-db", [entrance_camera(1, suite.scene.entrance_video)])
    fleet = _fleet(svc)
    refused = False
    with _scenario(svc, fleet):
        _run_then_stop(svc, fleet, f)
        gallery = svc.data_dir / "gallery"
        kept = _digests(gallery)
        for suffix in ("", "-wal", "-shm"):
            (svc.data_dir / f"edge.db{suffix}").unlink(missing_ok=True)
        refused = _expect_refusal(svc, f, key=None, words=("edge.db", "database", "数据库"))
        if svc.alive():
            time.sleep(3.0)
            stop(svc, f, "stop of the run without a database")
        now = _digests(gallery)
        f.notes["gallery_files_changed"] = sorted(k for k in set(kept) | set(now) if kept.get(k) != now.get(k))
        if f.notes["gallery_files_changed"]:
            f.problems.append("the gallery files were rewritten by a service started without its database")
        f.notes["alerts"] = "not counted: deleting the database deletes its alerts"
    return result("deleted_database", fault, f, expect="refuse", refused=refused)


SCENARIOS: dict[str, Scenario] = {
    "kill9_enrolment": kill_during_enrolment,
    "kill9_clip_write": kill_during_clip_write,
    "kill9_alert_push": kill_during_alert_push,
    "camera_file_vanishes": camera_file_vanishes,
    "full_disk": full_disk,
    "wrong_key": wrong_key,
    "deleted_database": deleted_database,
}
