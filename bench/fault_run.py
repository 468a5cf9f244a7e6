"""The fault suite's common steps: a prepared data folder, a service with terminals, restart and check.

Every scenario starts from the same data folder, made once with ``smartbranch enroll`` (the demo's VIP)
and copied, so that each scenario's service holds one enrolled person and greets them in the demo video.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.fault_checks import Findings, clean_refusal, inspect_folder, leftover_temp_files, lost_alerts, service_view
from bench.live import Exit, LiveService, Scene, build_scene, enrolment_photos, new_key
from bench.terminals import Fleet
from vision.engines.base import DlibEngineConfig
from vision.engines.registry import build_engine

logger = logging.getLogger(__name__)

GRACE_S = 8.0  # how long restarted terminals get to catch up


class ScenarioAborted(RuntimeError):
    """The scenario cannot go on (e.g. its service did not start); the findings say why."""


@dataclass
class Suite:
    root: Path
    scene: Scene
    template: Path  # a data folder with the VIP enrolled
    key: str
    photos: list[tuple[str, bytes]]  # real photos to enrol during scenarios

    @classmethod
    def prepare(cls, root: Path, *, counter: bool) -> Suite:
        scene = build_scene(root / "scene", counter=counter)
        key = new_key()
        template = LiveService(root / "template", [], key=key)
        template.enrol_vip(scene.photos)
        photos = enrolment_photos(scene.photos, build_engine(DlibEngineConfig()))
        return cls(root, scene, template.data_dir, key, photos)

    def service(self, name: str, cameras: list[dict[str, Any]], *, terminals: int = 3,
                extra: dict[str, Any] | None = None, seed: bool = True) -> LiveService:
        tokens = [secrets.token_urlsafe(12) for _ in range(terminals)]
        svc = LiveService(self.root / name, cameras, key=self.key, extra=extra or {}, terminal_tokens=tokens)
        if seed:
            self.seed(svc)
        return svc

    def seed(self, svc: LiveService) -> None:
        shutil.copytree(self.template, svc.data_dir, dirs_exist_ok=True)


def start(svc: LiveService, f: Findings, what: str, *, key: str | None = None) -> None:
    """Start the service; a start that fails is a crash (unclean) or a refusal, and aborts the scenario."""
    exit_ = svc.start(key=key)
    if exit_ is None:
        return
    f.crash_if_unclean(what, exit_)
    if clean_refusal(exit_):
        f.problems.append(f"{what}: the service refused to start: {exit_.log_tail.strip()[-300:]}")
    raise ScenarioAborted(what)


def stop(svc: LiveService, f: Findings, what: str) -> Exit:
    """Stop the service (SIGTERM); an unclean stop, or a service already dead, is a crash."""
    if not svc.alive():
        exit_ = svc.exit_info()
        f.crash_if_unclean(f"{what} (it had already exited)", exit_)
        if exit_.code == 0:
            f.crashes.append(f"{what}: the service had exited by itself (status 0)")
        return exit_
    exit_ = svc.stop()
    f.crash_if_unclean(what, exit_)
    return exit_


def wait_receipts(fleet: Fleet, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(fleet.received()) >= n:
            return True
        time.sleep(0.1)
    return False


def check_alive(svc: LiveService, f: Findings, what: str) -> bool:
    if svc.alive():
        return True
    f.crash_if_unclean(what, svc.exit_info())
    if svc.exit_info().code == 0:
        f.crashes.append(f"{what}: the service exited by itself (status 0)")
    return False


def after_fault(f: Findings, svc: LiveService, fault_at: datetime) -> None:
    """What lies on disk right after the fault, before anything restarts (context, not counted)."""
    f.notes["on_disk_after_fault"] = inspect_folder(svc.data_dir, open_before=fault_at)
    f.notes["temp_files_after_fault"] = leftover_temp_files(svc.data_dir)


def restart_and_check(f: Findings, svc: LiveService, fleet: Fleet | None, before: dict[str, int],
                      fault_at: datetime | None, *, key: str | None = None, settle_s: float = 4.0) -> None:
    """Restart after the fault and count what is still wrong: alerts, half-written records, crashes."""
    exit_ = svc.start(key=key)
    if exit_ is not None:
        f.crash_if_unclean("restart after the fault", exit_)
        f.half_written.append(f"the service does not start on its data folder after the fault: "
                              f"{exit_.log_tail.strip()[-300:]}")
        return
    time.sleep(settle_s)
    log = svc.log_text()
    f.notes["restart_log_mentions_gallery"] = [ln for ln in log.splitlines() if "gallery" in ln.lower()][:5]
    try:
        served = svc.stored_alerts()
    except httpx.HTTPError as exc:
        f.problems.append(f"GET /api/alerts failed after the restart: {exc}")
        served = []
    f.alerts_lost += lost_alerts(before, served)
    if fleet is not None and served:
        missing = fleet.wait_for([a["id"] for a in served], GRACE_S)
        seqs = {a["id"]: a["seq"] for a in served}
        f.alerts_lost += [f"{name} never received seq {seqs[a]}" for name, ids in missing.items() for a in ids]
    f.notes["alerts_served_after_restart"] = len(served)
    f.half_written += inspect_folder(svc.data_dir, open_before=fault_at)
    if check_alive(svc, f, "after the restart"):
        f.half_written += service_view(svc)
    f.notes["temp_files_after_restart"] = leftover_temp_files(svc.data_dir)
    f.notes["tracebacks_logged"] = svc.tracebacks()


def result(name: str, fault: str, f: Findings, *, expect: str = "survive", refused: bool | None = None,
           skipped: str | None = None) -> dict[str, Any]:
    passed = None if skipped else (not f.crashes and not f.alerts_lost and not f.half_written and not f.problems
                                   and (expect != "refuse" or bool(refused)))
    return {"name": name, "fault": fault, "expect": expect, "passed": passed, "skipped": skipped,
            "crashes": len(f.crashes), "alerts_lost": len(f.alerts_lost), "half_written": len(f.half_written),
            "refused_to_start": refused, "crash_details": f.crashes, "alerts_lost_details": f.alerts_lost[:50],
            "half_written_details": f.half_written, "problems": f.problems, "details": f.notes}
