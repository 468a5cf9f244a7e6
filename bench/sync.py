"""``python -m bench.sync --json OUT.json``: how fast the console's gallery reaches the edges, how fast it takes
their events, and what a full snapshot of 100k persons costs (issue 11's benchmark).

The console is the real one, ``smartbranch console run`` in a process of its own, on a fresh PostgreSQL database
(``--backend sqlite`` for the embedded default). The changes are written by this process the way the console's
services write them (person, photo and template rows, a gallery change under the gallery lock, one transaction),
with the console's own MQTT announcer hooked on the session, so each commit is announced like an enrolment's.
Persons carry a synthetic template (a random unit vector of the box's model) and one small real JPEG (a thumbnail
of obama.jpg), stored once in the blob store and shared by every person's photo row.

- ``propagation_p50_s`` / ``propagation_p95_s``: commit -> arrival at each of ``--edges`` simulated edges that
  long-poll (:mod:`bench.sync_clients`: light HTTP clients with the box's parser, and why not whole boxes).
- ``propagation_mqtt_p95_s``: the same with edges that poll every ``--poll-s`` (10 s) and are woken by the real
  Mosquitto (127.0.0.1:1883) through the box's MQTT waker.
- ``events_per_s``: events stored by ``POST /api/sync/events`` (batches of 500, gzip) from ``--event-edges``
  concurrent edges.
- ``snapshot_100k_bytes`` / ``snapshot_100k_s``: a real box (:class:`edge.runtime.EdgeRuntime` with its real
  puller, stage and atomic apply) registered fresh pulls the whole snapshot of ``--snapshot-persons`` persons
  from the console over HTTP (gzip) and applies it: build at the console, send, apply, end to end. Bytes are as
  received (gzip), the JSON's size beside them. ``snapshot_console_cpu_s`` / ``snapshot_box_cpu_s``: the CPU
  seconds the console's process and the box's (this one) spent on it: on a shared, loaded machine the wall time
  mostly measures the wait for a core, the CPU time what the snapshot costs.
  Where the wall went: ``snapshot_box_first_page_s`` (the first page asked and received),
  ``snapshot_box_wait_page_s`` (the box waited for next pages: console or network behind), ``snapshot_box_stage_s``
  and ``snapshot_box_parse_s`` (the box staging and parsing pages), ``snapshot_box_apply_s`` (the one apply at the
  end, which nothing overlaps), ``snapshot_box_stage_cpu_s`` / ``snapshot_box_apply_cpu_s`` (the CPU of the
  box's thread in them: the rest is the disk or the wait for a core); ``snapshot_console_ask_s`` (the box's asks
  waited at the console for their pages) and ``snapshot_console_ahead_idle_s`` (pages built ahead waited for the
  box to ask: the console was ahead), from the console's INFO line (it runs with ``-v``).

``--phases`` runs some phases only (the others report NaN), e.g. ``--phases snapshot --snapshot-persons 10000``.

Each figure is the median over ``--repeats`` runs (the snapshot: ``--snapshot-repeats``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sqlalchemy import create_engine, func, insert, select, text, update

from bench.common import percentile, print_table, write_json
from bench.sync_clients import ClientProcess, EdgeLogin, EventPlan, PullPlan, PullResult
from bench.sync_support import cpu_s, database, free_port, thumbnail, wait_http
from console.config import ConsoleConfig, DatabaseConfig, MqttConfig, SyncConfig
from console.context import ConsoleContext
from console.dupindex import TemplateCipher, lock_gallery
from console.migrate import upgrade
from console.security import digest, new_secret
from console.sync.announce import install_announcer
from console.tables import Branch, Edge, GalleryChange, Person, Photo

ROOT = Path(__file__).resolve().parents[1]
BRANCHES = 5


class World:
    """The console (a subprocess) and this process's own context on the same database and data folder."""

    def __init__(self, workdir: Path, database_url: str, model_id: str, jpeg: bytes, topic_prefix: str) -> None:
        self.workdir, self.model_id, self.jpeg = workdir, model_id, jpeg
        self.snapshot_persons = 0  # persons added for the snapshot phase: each repeat snapshots the same ones
        config = ConsoleConfig(data_dir=workdir / "console", database=DatabaseConfig(url=database_url),
                               sync=SyncConfig(mqtt=MqttConfig(host="127.0.0.1", topic_prefix=topic_prefix)))
        database = create_engine(config.database_url)
        upgrade(database)
        database.dispose()
        self.ctx = ConsoleContext.open(config)
        install_announcer(self.ctx)
        self.cipher = TemplateCipher(self.ctx.key)
        self.blob = self.ctx.blobs.put(jpeg)
        self.sha = hashlib.sha256(jpeg).hexdigest()
        with self.ctx.db.transaction() as session:
            session.add_all([Branch(code=f"BR{i:03d}", name=f"网点{i}", region="east", timezone="Asia/Shanghai")
                             for i in range(BRANCHES)])
        with self.ctx.db.transaction() as session:
            self.home = session.scalars(text("SELECT id FROM branches ORDER BY id")).first()
        self.port = free_port()
        (workdir / "console.yaml").write_text(yaml.safe_dump({
            "data_dir": str(config.data_dir), "database": {"url": database_url, "pool_size": 20}}), encoding="utf-8")
        self.log = (workdir / "console.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "launch.main", "console", "-v", "run", "--config",
                                         str(workdir / "console.yaml"), "--port", str(self.port)], cwd=ROOT,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(f"{self.url}/healthz", self.process)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def edges(self, count: int, prefix: str) -> tuple[EdgeLogin, ...]:
        """``count`` registered edges spread over the branches (rows as registration writes them)."""
        logins = []
        with self.ctx.db.transaction() as session:
            branches = list(session.execute(text("SELECT id, code FROM branches ORDER BY id")))
            for i in range(count):
                branch_id, code = branches[i % len(branches)]
                token = new_secret()
                session.add(Edge(branch_id=branch_id, name=f"{prefix}-{i}", token_hash=digest(token)))
                logins.append(EdgeLogin(token, str(code)))
        return tuple(logins)

    def add_persons(self, count: int, label: str) -> list[str]:
        """``count`` VIPs for all branches in one transaction, as an enrolment writes them (person, photo row,
        template, gallery change under the gallery lock); their ids. One person goes through the ORM, so the
        console's MQTT announcer sees the change; many go as bulk inserts (the snapshot's setup, not timed)."""
        ids = [secrets.token_hex(16) for _ in range(count)]
        vectors = np.random.default_rng().standard_normal((count, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        persons = [{"id": pid, "name": f"{label}{i}", "role": "vip", "tier": "钻石", "notes": "",
                    "home_branch_id": self.home, "scope_kind": "all", "template": self.cipher.encrypt(vectors[i]),
                    "model_id": self.model_id, "created_by": "bench", "version": 0} for i, pid in enumerate(ids)]
        photos = [{"id": secrets.token_hex(16), "person_id": pid, "blob_key": self.blob, "sha256": self.sha,
                   "content_type": "image/jpeg", "width": 96, "height": 96, "face_px": 90.0, "sharpness": 50.0,
                   "yaw": 0.0, "detector_score": 1.0, "embedding": self.cipher.encrypt(vectors[i]),
                   "model_id": self.model_id, "created_by": "bench"} for i, pid in enumerate(ids)]
        with self.ctx.db.transaction() as session:
            lock_gallery(session)
            if count == 1:
                person = Person(**persons[0])
                session.add(person)
                session.flush()
                session.add(Photo(**photos[0]))
                change = GalleryChange(person_id=ids[0], kind="upsert")
                session.add(change)
                session.flush()
                person.version = change.seq
                return ids
            connection = session.connection()
            connection.execute(insert(Person), persons)
            connection.execute(insert(Photo), photos)
            connection.execute(insert(GalleryChange), [{"person_id": pid, "kind": "upsert"} for pid in ids])
            newest = select(func.max(GalleryChange.seq)).where(GalleryChange.person_id == Person.id).scalar_subquery()
            connection.execute(update(Person).where(Person.id.in_(ids)).values(version=newest))
        return ids

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(20)
        self.log.close()
        self.ctx.close()


def version(world: World) -> int:
    from console.sync.feed import current_version

    with world.ctx.db.transaction() as session:
        return current_version(session)


# -- the phases ---------------------------------------------------------------------------------------------------
def propagation(world: World, edges: int, changes: int, mode: str, poll_s: float, prefix: str) -> dict[str, Any]:
    logins = world.edges(edges, f"{mode}-{secrets.token_hex(3)}")
    plan = PullPlan(world.url, logins, version(world), changes, mode=mode, poll_s=poll_s, topic_prefix=prefix)
    clients = ClientProcess("pull", plan)
    clients.wait_ready()
    committed: dict[str, float] = {}
    for _ in range(changes):
        [pid] = world.add_persons(1, mode)
        committed[pid] = time.time()
        time.sleep(1.0)
    result: PullResult = clients.result()
    delays = [arrived - committed[pid] for seen in result.arrivals for pid, arrived in seen.items() if pid in committed]
    missing = edges * changes - len(delays)
    return {"p50_s": percentile(delays, 0.5), "p95_s": percentile(delays, 0.95), "max_s": max(delays, default=0.0),
            "samples": len(delays), "missing": missing, "requests": result.requests, "errors": result.errors[:5]}


def events(world: World, edge_count: int, per_edge: int) -> dict[str, Any]:
    logins = world.edges(edge_count, f"events-{secrets.token_hex(3)}")
    stored, seconds, errors = ClientProcess("events", EventPlan(world.url, logins, per_edge)).result()
    return {"events_per_s": stored / seconds if seconds else 0.0, "stored": stored, "seconds": seconds,
            "errors": errors[:5]}


def snapshot(world: World, persons: int) -> dict[str, Any]:
    """A fresh real box pulls and applies the whole snapshot; the persons are added first (not timed)."""
    import edge.sync.client as client_module
    from edge.config import load_config
    from edge.runtime import EdgeRuntime
    from edge.store.datadir import open_data_folder
    from edge.sync.credentials import Credentials, write_credentials
    from edge.sync.puller import SyncPuller

    missing = max(0, persons - world.snapshot_persons)  # a repeat pulls the same persons, not as many more
    for start in range(0, missing, 5000):
        world.add_persons(min(5000, missing - start), "快照")
    world.snapshot_persons += missing
    [login] = world.edges(1, f"snapshot-{secrets.token_hex(3)}")
    box = world.workdir / f"box-{secrets.token_hex(3)}"
    box.mkdir()
    (box / "smartbranch.yaml").write_text(yaml.safe_dump({
        "branch": {"id": "bench", "name": "bench"}, "paths": {"data_dir": str(box / "data")},
        "face": {"engine_instances": 1}, "sync": {"console_url": world.url, "page_limit": 500,
                                                  "request_timeout_s": 300}}), encoding="utf-8")
    config = load_config(box / "smartbranch.yaml")
    data_dir = config.paths.data_dir
    folder = open_data_folder(data_dir, branch_id=config.branch.id, clips_dir=config.clips.resolve_dir(data_dir))
    try:  # what `smartbranch edge register` writes: the token, encrypted with the box's data key
        write_credentials(data_dir, folder.key.fernet, Credentials(
            token=login.token, edge_id="0", branch_code=login.branch, branch_name="", branch_timezone=""))
    finally:
        folder.close()
    runtime = EdgeRuntime(config)
    try:
        assert runtime.sync is not None and runtime.sync.puller is not None
        received = [0, 0]
        decode = client_module._decode

        def counting(raw: bytes, encoding: str | None) -> Any:  # decompressed once: the box's own work, no more
            received[0] += len(raw)
            plain = gzip.decompress(raw) if encoding == "gzip" else raw
            received[1] += len(plain)
            return decode(plain, None)
        client_module._decode = counting
        puller: SyncPuller = runtime.sync.puller
        console_cpu, box_cpu = cpu_s(world.process.pid), time.process_time()
        started = time.perf_counter()
        try:
            applied = puller.pull(0.0)
        finally:
            client_module._decode = decode
        seconds = time.perf_counter() - started
        console_cpu, box_cpu = cpu_s(world.process.pid) - console_cpu, time.process_time() - box_cpu
        held = len(runtime.gallery)
        box_timings = dict(puller.last_snapshot)
    finally:
        runtime.stop()
        shutil.rmtree(box, ignore_errors=True)
    return {"seconds": seconds, "bytes": received[0], "json_bytes": received[1], "applied": applied,
            "gallery_size": held, "persons": persons, "console_cpu_s": console_cpu, "box_cpu_s": box_cpu,
            **{f"box_{k}": v for k, v in box_timings.items()}, **_console_waits(world, login.branch)}


SERVED = re.compile(r"sync: snapshot v\d+ of branch (\S+) served: (\d+) pages, edge asks waited ([\d.]+) s for "
                    r"pages, pages built ahead waited ([\d.]+) s for the edge")


def _console_waits(world: World, branch: str) -> dict[str, float]:
    """The console's own account of the last snapshot it served this branch (its INFO line, console/sync/pages)."""
    world.log.flush()
    found = [m for m in SERVED.finditer((world.workdir / "console.log").read_text(errors="replace"))
             if m.group(1) == branch]
    if not found:
        return {"console_pages": float("nan"), "console_ask_s": float("nan"), "console_ahead_idle_s": float("nan")}
    last = found[-1]
    return {"console_pages": float(last.group(2)), "console_ask_s": float(last.group(3)),
            "console_ahead_idle_s": float(last.group(4))}


# -- the run ------------------------------------------------------------------------------------------------------
TIMING_KEYS = ("box_first_page_s", "box_wait_page_s", "box_stage_s", "box_stage_cpu_s", "box_parse_s",
               "box_apply_s", "box_apply_cpu_s", "console_ask_s", "console_ahead_idle_s")


def _median(runs: list[dict[str, Any]], key: str) -> float:
    """The median over the runs that have ``key``; NaN for a phase left out (``--phases``) or a figure no run
    gave (a snapshot of one page keeps no page timings)."""
    values = [r[key] for r in runs if key in r]
    return float(statistics.median(values)) if values else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from vision.engines.base import DlibEngineConfig
    from vision.engines.registry import build_engine

    model_id = build_engine(DlibEngineConfig()).model_id
    workdir = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=args.workdir))
    prefix = f"bench{secrets.token_hex(3)}"
    result: dict[str, Any] = {"backend": args.backend, "edges": args.edges, "changes": args.changes,
                              "repeats": args.repeats, "photo_bytes": 0, "model_id": model_id}
    try:
        with database(args.backend, workdir) as url:
            world = World(workdir, url, model_id, thumbnail(), prefix)
            result["photo_bytes"] = len(world.jpeg)
            try:
                phases = set(args.phases.split(","))
                longpoll = [propagation(world, args.edges, args.changes, "longpoll", args.poll_s, prefix)
                            for _ in range(args.repeats if "longpoll" in phases else 0)]
                mqtt = [propagation(world, args.edges, args.changes, "mqtt", args.poll_s, prefix)
                        for _ in range(args.repeats if "mqtt" in phases else 0)]
                ingest = [events(world, args.event_edges, args.events_per_edge)
                          for _ in range(args.repeats if "events" in phases else 0)]
                snaps = [snapshot(world, args.snapshot_persons)
                         for _ in range(args.snapshot_repeats if "snapshot" in phases else 0)]
            finally:
                world.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.update({
        "propagation_p50_s": _median(longpoll, "p50_s"), "propagation_p95_s": _median(longpoll, "p95_s"),
        "propagation_mqtt_p50_s": _median(mqtt, "p50_s"), "propagation_mqtt_p95_s": _median(mqtt, "p95_s"),
        "events_per_s": _median(ingest, "events_per_s"),
        "snapshot_persons": args.snapshot_persons,
        "snapshot_100k_bytes": int(_median(snaps, "bytes")) if snaps else 0,
        "snapshot_100k_json_bytes": int(_median(snaps, "json_bytes")) if snaps else 0,
        "snapshot_100k_s": _median(snaps, "seconds"),
        "snapshot_console_cpu_s": _median(snaps, "console_cpu_s"), "snapshot_box_cpu_s": _median(snaps, "box_cpu_s"),
        **{f"snapshot_{k}": _median(snaps, k) for k in TIMING_KEYS},
        "runs": {"longpoll": longpoll, "mqtt": mqtt, "events": ingest, "snapshot": snaps},
        "simulated_edges": "light HTTP clients with the box's parser (bench/sync_clients.py); the snapshot is "
                           "applied by a real box",
    })
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--edges", type=int, default=50)
    parser.add_argument("--changes", type=int, default=10, help="changes per propagation run (1 s apart)")
    parser.add_argument("--poll-s", type=float, default=10.0, help="interval of the MQTT run's edges")
    parser.add_argument("--event-edges", type=int, default=4)
    parser.add_argument("--events-per-edge", type=int, default=5000)
    parser.add_argument("--snapshot-persons", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--snapshot-repeats", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--phases", default="longpoll,mqtt,events,snapshot",
                        help="the phases to run, comma-separated (a phase left out reports nan)")
    args = parser.parse_args(argv)
    result = run(args)
    rows = [("propagation_p50_s", 3, f"{args.edges} edges long-polling"), ("propagation_p95_s", 3, "target <= 2 s"),
            ("propagation_mqtt_p95_s", 3, f"interval {args.poll_s:.0f} s + MQTT wake; target <= 1 s"),
            ("events_per_s", 0, f"{args.event_edges} edges, batches of 500; target >= 1000"),
            ("snapshot_100k_bytes", 0, f"{args.snapshot_persons} persons, gzip"),
            ("snapshot_100k_s", 1, "build + send + apply; target <= 60 s"),
            ("snapshot_console_cpu_s", 1, "CPU seconds of the console process"),
            ("snapshot_box_cpu_s", 1, "CPU seconds of the box (all its threads)"),
            ("snapshot_box_first_page_s", 1, "box: first page asked + received"),
            ("snapshot_box_wait_page_s", 1, "box waited for next pages"),
            ("snapshot_box_stage_s", 1, "box staged pages (embed, seal, insert)"),
            ("snapshot_box_parse_s", 1, "box parsed pages (photos checked)"),
            ("snapshot_box_apply_s", 1, "box applied the stage (one transaction)"),
            ("snapshot_box_apply_cpu_s", 1, "CPU of the apply (its thread)"),
            ("snapshot_console_ask_s", 1, "console: asks waited for pages"),
            ("snapshot_console_ahead_idle_s", 1, "console: pages built ahead waited for the box")]
    print_table([(key, f"{float(result[key]):.{digits}f}", note) for key, digits, note in rows])
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
