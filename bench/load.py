"""Load test: lobby terminals, enrolments and cameras at once, against a live edge service.

    python -m bench.load --json OUT.json [--seconds 60] [--terminals 50] [--cameras 4] [--enrol-every 3]

The service is ``smartbranch edge run``, started as a child process on 127.0.0.1 with a generated config in
a temporary data folder and the real dlib engine, pinned to ``--cores`` CPUs. Every camera plays the demo's
walk-in video of real photos (looped, 10 fps, real time); the VIP enrolled before the start walks in once
per loop, and the people enrolled during the run walk in as well. ``vip_arrival.cooldown_s`` is 0, so every
decided track is an alert. The terminals speak the terminal page's protocol (``bench.terminals``); every
fifth one drops its connection once and reconnects with ``since``. Every ``--enrol-every`` seconds an
enrolment (a new person, or another photo of the VIP) is posted to the HTTP API on its own thread, so
enrolments overlap the cameras and each other. A service that exits unexpectedly is counted as a crash and
restarted on the same data folder, port and key; the terminals reconnect by themselves.

At the end the bench reads the stored alerts from ``GET /api/alerts``, gives the terminals ``--grace``
seconds to receive them, and counts, per terminal, each stored alert it never received (``alerts_lost``).
``push_p95_s`` is the time from the alert's ``created_at`` (stored, then pushed) to its receipt at a
terminal; ``capture_to_receipt_p95_s`` starts at the capture of the frame that decided the alert. Both
compare the service's wall clock with the bench's on the same host (``CLOCK_REALTIME``).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import statistics
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import percentile, print_table, write_json
from bench.live import Exit, LiveService, build_scene, enrolment_photos, entrance_camera, in_workdir
from bench.terminals import Fleet, make_fleet
from vision.engines.base import DlibEngineConfig
from vision.engines.registry import build_engine

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT = 4  # enrolment requests in flight at once; a tick with this many is skipped (counted)


@dataclass(frozen=True, slots=True)
class LoadSettings:
    seconds: float = 60.0
    terminals: int = 50
    cameras: int = 4
    enrol_every_s: float = 3.0
    cores: int | None = 2
    grace_s: float = 8.0
    max_restarts: int = 3
    drop_every: int = 5


class Enrolments:
    """Posts one enrolment every ``every_s`` seconds, each on its own thread (so slow ones overlap)."""

    def __init__(self, service: LiveService, photos: list[tuple[str, bytes]], vip_photos: list[tuple[str, bytes]],
                 vip_id: str | None, every_s: float) -> None:
        self._service = service
        self._photos = photos
        self._vip_photos = vip_photos
        self._vip_id = vip_id
        self._every_s = every_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._ticker = threading.Thread(target=self._tick, name="enrolments", daemon=True)
        self.statuses: Counter[str] = Counter()  # "201", "409 duplicate", "connection error", …
        self.skipped = 0
        self.seconds: list[float] = []

    def start(self) -> None:
        self._ticker.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._ticker.join(timeout)
        for thread in self._threads:
            thread.join(timeout)

    def _tick(self) -> None:
        n = 0
        while not self._stop.wait(self._every_s):
            if sum(t.is_alive() for t in self._threads) >= MAX_IN_FLIGHT:
                self.skipped += 1
                continue
            thread = threading.Thread(target=self._one, args=(n,), name=f"enrol-{n}", daemon=True)
            self._threads.append(thread)
            thread.start()
            n += 1

    def _one(self, n: int) -> None:
        t0 = time.perf_counter()
        try:
            if self._vip_id is not None and self._vip_photos and n % 3 == 2:
                name, data = self._vip_photos[(n // 3) % len(self._vip_photos)]
                resp = self._service.request("POST", f"/api/persons/{self._vip_id}/photos",
                                             files={"photo": (name, data)}, timeout=60)
            else:
                name, data = self._photos[n % len(self._photos)]
                form = {"name": f"压测客户{n % len(self._photos) + 1}", "tier": "金卡", "consent": "压测：示例同意记录"}
                resp = self._service.request("POST", "/api/persons", timeout=60, files={"photo": (name, data)},
                                             data=form)
        except httpx.HTTPError as exc:
            key = f"connection error ({type(exc).__name__})"
        else:
            key = str(resp.status_code)
            if resp.status_code >= 400:
                code = _detail_code(resp)
                key = f"{resp.status_code} {code}" if code else key
        with self._lock:
            self.statuses[key] += 1
            self.seconds.append(time.perf_counter() - t0)


def _detail_code(resp: httpx.Response) -> str | None:
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return None
    return str(detail.get("code")) if isinstance(detail, dict) else None


def _vip_id(service: LiveService) -> str | None:
    resp = service.request("GET", "/api/persons")
    if resp.status_code != 200:
        return None
    return next((p["id"] for p in resp.json() if p.get("role", "vip") == "vip"), None)


def run_load(settings: LoadSettings, workdir: Path) -> dict[str, Any]:
    scene = build_scene(workdir / "scene", counter=False)
    engine = build_engine(DlibEngineConfig())
    photos = enrolment_photos(scene.photos, engine)
    vip_photos = [(n, (scene.photos / n).read_bytes()) for n in ("obama2.jpg", "obama3.jpg")]
    tokens = [secrets.token_urlsafe(12) for _ in range(settings.terminals)]
    service = LiveService(workdir / "edge", [entrance_camera(i + 1, scene.entrance_video)
                                             for i in range(settings.cameras)],
                          extra={"rules": {"vip_arrival": {"cooldown_s": 0}}}, terminal_tokens=tokens,
                          cores=settings.cores)
    service.enrol_vip(scene.photos)
    first = service.start()
    if first is not None:
        raise RuntimeError(f"the service did not start: exit {first.code} {first.signal}\n{first.log_tail}")
    t0 = time.monotonic()
    fleet = make_fleet(tokens, service.ws_url, drop_every=settings.drop_every,
                       drop_window=(t0 + 0.2 * settings.seconds, t0 + 0.8 * settings.seconds))
    fleet.start()
    enrolments = Enrolments(service, photos, vip_photos, _vip_id(service), settings.enrol_every_s)
    enrolments.start()
    crashes: list[Exit] = []
    rss: list[float] = []
    while time.monotonic() - t0 < settings.seconds:
        if not service.alive():
            crashes.append(service.exit_info())
            logger.warning("the service exited (%s %s); restarting it", crashes[-1].code, crashes[-1].signal)
            if len(crashes) > settings.max_restarts or service.start() is not None:
                break
        sample = service.rss_mb()
        if sample is not None:
            rss.append(sample)
        time.sleep(0.25)
    elapsed = time.monotonic() - t0
    enrolments.stop()
    result = _collect(service, fleet, settings, elapsed)
    fleet.stop()
    final = service.stop() if service.alive() else service.exit_info()
    result.update(_outcome(crashes, final, enrolments, rss))
    result["server_tracebacks_logged"] = service.tracebacks()
    return result


def _collect(service: LiveService, fleet: Fleet, settings: LoadSettings, elapsed: float) -> dict[str, Any]:
    health = service.request("GET", "/healthz").json() if service.alive() else {}
    stored = service.stored_alerts() if service.alive() else []
    ids = [a["id"] for a in stored]
    missing = fleet.wait_for(ids, settings.grace_s)
    stored_ids = set(ids)
    receipts = [r for t in fleet.terminals for r in t.receipts.values() if r.alert_id in stored_ids]
    push = [r.received_at - r.created_at for r in receipts]
    capture = [r.received_at - r.captured_at for r in receipts]
    max_seq = max((a["seq"] for a in stored), default=0)
    phantom = {r.alert_id for t in fleet.terminals for r in t.receipts.values()
               if r.alert_id not in stored_ids and r.seq <= max_seq}
    return {
        "settings": asdict(settings), "seconds_run": round(elapsed, 1), "cpu_count": os.cpu_count(),
        "terminals": len(fleet.terminals), "terminals_connected": fleet.connected(),
        "alerts_sent": len(stored), "alerts_by_type": dict(Counter(a["type"] for a in stored)),
        "alerts_lost": sum(len(v) for v in missing.values()),
        "alerts_lost_by_terminal": {k: len(v) for k, v in missing.items()},
        "alerts_received_not_stored": len(phantom),
        "deliveries": len(receipts), "deliveries_replayed": sum(r.replayed for r in receipts),
        "push_clock": "created_at (service wall clock, UTC) -> receipt (bench time.time()), same host",
        "push_p50_s": _round(percentile(push, 0.5)), "push_p95_s": _round(percentile(push, 0.95)),
        "push_max_s": _round(max(push, default=float("nan"))),
        "capture_to_receipt_p50_s": _round(percentile(capture, 0.5)),
        "capture_to_receipt_p95_s": _round(percentile(capture, 0.95)),
        "reconnects": sum(max(t.connects - 1, 0) for t in fleet.terminals),
        "planned_drops": sum(t.drops for t in fleet.terminals),
        "close_codes": dict(Counter(str(c) for t in fleet.terminals for c in t.close_codes)),
        "seq_conflicts": sum(t.seq_conflicts for t in fleet.terminals),
        "acks_sent": sum(t.acks_sent for t in fleet.terminals),
        "ack_events_received": sum(t.ack_events for t in fleet.terminals),
        "cameras": {c["id"]: {"frames": c.get("frames"), "processed": c.get("processed"),
                              "dropped": c.get("dropped"), "state": c.get("state")}
                    for c in health.get("cameras", [])},
        "gallery_size": health.get("gallery_size"),
    }


def _outcome(crashes: list[Exit], final: Exit, enrolments: Enrolments, rss: list[float]) -> dict[str, Any]:
    statuses = dict(enrolments.statuses)
    return {
        "crashes": len(crashes),
        "crash_details": [{"exit_code": c.code, "signal": c.signal, "markers": list(c.crash_markers),
                           "log_tail": c.log_tail[-800:]} for c in crashes],
        "final_stop": {"exit_code": final.code, "signal": final.signal, "markers": list(final.crash_markers)},
        "http_5xx": sum(v for k, v in statuses.items() if k[:1] == "5"),
        "enrolments": {"attempted": sum(statuses.values()), "by_status": statuses,
                       "skipped_ticks": enrolments.skipped,
                       "median_s": _round(statistics.median(enrolments.seconds)) if enrolments.seconds else None},
        "server_rss_mb_max": round(max(rss), 1) if rss else None,
        "server_rss_mb_median": round(statistics.median(rss), 1) if rss else None,
    }


def _round(value: float) -> float | None:
    return None if value != value else round(value, 3)  # NaN -> None (JSON has no NaN)


def report(result: dict[str, Any]) -> None:
    def show(key: str) -> str:
        value = result.get(key)
        return "-" if value is None else str(value)

    print_table([
        ("terminals", f"{result['terminals_connected']}/{result['terminals']}", "connected at least once"),
        ("seconds_run", show("seconds_run"), f"{len(result['cameras'])} cameras, {result['cpu_count']} CPUs here"),
        ("alerts_sent", show("alerts_sent"), "stored by the service (GET /api/alerts)"),
        ("deliveries", show("deliveries"), f"first receipts, {result['deliveries_replayed']} by replay"),
        ("alerts_lost", show("alerts_lost"), "terminal x stored alert never received; target 0"),
        ("push_p95_s", show("push_p95_s"), f"created_at -> terminal; p50 {show('push_p50_s')}; target <= 1.0"),
        ("capture_to_receipt_p95_s", show("capture_to_receipt_p95_s"), "frame capture -> terminal"),
        ("reconnects", show("reconnects"), f"{result['planned_drops']} planned drops"),
        ("crashes", show("crashes"), "service exits before the stop; target 0"),
        ("http_5xx", show("http_5xx"), f"enrolments: {result['enrolments']['by_status']}"),
        ("server_rss_mb_max", show("server_rss_mb_max"), "VmRSS of the service process"),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load runs (>= 60 for the target)")
    parser.add_argument("--terminals", type=int, default=50, help="WebSocket terminals")
    parser.add_argument("--cameras", type=int, default=4, help="entrance cameras playing the demo video")
    parser.add_argument("--enrol-every", type=float, default=3.0, help="seconds between enrolment requests")
    parser.add_argument("--cores", type=int, default=2, help="CPUs the service is pinned to (0: no pinning)")
    parser.add_argument("--grace", type=float, default=8.0, help="seconds the terminals get to catch up at the end")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the data folder and logs here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = LoadSettings(seconds=args.seconds, terminals=args.terminals, cameras=args.cameras,
                            enrol_every_s=args.enrol_every, cores=args.cores or None, grace_s=args.grace)
    result = in_workdir(args.workdir, "bench-load-", lambda folder: run_load(settings, folder))
    report(result)
    write_json(args.json, result)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
