"""What the fault suite checks after a fault: crashes, lost alerts, half-written records, refusals to start.

Half-written records are looked for twice. Right after the fault, with the service dead, the data folder
is read as it lies on disk (SQLite opened read-only, the gallery's id map, the clip files) and reported as
``on_disk_after_fault``. After the restart the same checks run again, together with the service's own view
(persons listed by the API against its gallery size); only what is still wrong then is counted in
``half_written``: a restart that repairs the folder (a gallery rebuilt from the stored photos, leftovers
removed) is crash recovery, and the details say that it happened.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.live import Exit, LiveService

logger = logging.getLogger(__name__)

GALLERY_MAP_GLOB = "gallery-*.ids.json"


@dataclass
class Findings:
    """What one scenario found. ``problems`` are counted; ``notes`` are context."""

    crashes: list[str] = field(default_factory=list)
    alerts_lost: list[str] = field(default_factory=list)
    half_written: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # other failures of the scenario's own expectation
    notes: dict[str, Any] = field(default_factory=dict)

    def crash_if_unclean(self, what: str, exit_: Exit, *, expected_signal: str | None = None) -> None:
        """Count ``exit_`` as a crash unless it was a clean exit (status 0), our own signal, or a clean refusal.
        Tracebacks that a service which went on running logged (a request answered 500) are not crashes."""
        if exit_.code is None or exit_.code == 0:
            return
        if exit_.signal is not None and exit_.signal == expected_signal:
            return
        if clean_refusal(exit_):
            return  # a refusal is judged by the scenario: right for a wrong key, wrong after a kill
        self.crashes.append(f"{what}: exit {exit_.code}{' ' + exit_.signal if exit_.signal else ''}"
                            f"{' ' + ', '.join(exit_.crash_markers) if exit_.crash_markers else ''}")
        self.notes.setdefault("crash_log_tails", []).append(exit_.log_tail[-1000:])


def clean_refusal(exit_: Exit | None) -> bool:
    """The service quit before serving, with a non-zero status, no signal and no traceback."""
    return exit_ is not None and exit_.code not in (None, 0) and exit_.signal is None and not exit_.crash_markers


def refusal_message(exit_: Exit) -> str:
    lines = [ln.strip() for ln in exit_.log_tail.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _db(data_dir: Path) -> sqlite3.Connection | None:
    path = data_dir / "edge.db"
    if not path.exists():
        return None
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def _rows(conn: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    try:
        return list(conn.execute(sql))
    except sqlite3.OperationalError as exc:  # a table this version does not have
        logger.info("query %r failed: %s", sql, exc)
        return []


def gallery_owners(data_dir: Path) -> tuple[set[str] | None, list[str]]:
    """Persons named by the gallery id map(s) on disk, and what could not be read."""
    folder = data_dir / "gallery"
    maps = sorted(folder.glob(GALLERY_MAP_GLOB)) if folder.is_dir() else []
    if not maps:
        return None, []
    owners: set[str] = set()
    unreadable: list[str] = []
    for path in maps:
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            owners |= {str(v) for v in meta["owner"].values()}
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            unreadable.append(f"gallery id map {path.name} does not load: {exc}")
    return owners, unreadable


def inspect_folder(data_dir: Path, *, open_before: datetime | None = None) -> list[str]:
    """Half-written records in a data folder: persons without a gallery entry and gallery entries without a
    person, clip rows without their file, ``.part`` files, and interactions started before ``open_before``
    (the fault) that were never closed."""
    problems: list[str] = []
    conn = _db(data_dir)
    persons: set[str] = set()
    if conn is not None:
        with contextlib.closing(conn):
            persons = {str(r[0]) for r in _rows(conn, "SELECT id FROM persons")}
            for clip_id, path in _rows(conn, "SELECT id, path FROM clips"):
                if not Path(str(path)).is_file():
                    problems.append(f"clip row {clip_id} has no file ({Path(str(path)).name})")
            if open_before is not None:
                stamp = open_before.strftime("%Y-%m-%d %H:%M:%S")
                for (iid,) in _rows(conn, "SELECT id FROM interactions WHERE ended_at IS NULL "
                                          f"AND started_at < '{stamp}'"):
                    problems.append(f"interaction {iid} started before the fault is still open")
    owners, unreadable = gallery_owners(data_dir)
    problems += unreadable
    if owners is not None:
        problems += [f"person {p} has no gallery entry" for p in sorted(persons - owners)]
        problems += [f"gallery entry for person {p} who is not in the database" for p in sorted(owners - persons)]
    elif persons:
        problems.append(f"{len(persons)} persons but no gallery id map")
    problems += [f"leftover {p.relative_to(data_dir)}" for p in sorted(data_dir.rglob("*.part"))]
    return problems


def service_view(service: LiveService) -> list[str]:
    """Half-written records the running service shows: persons it lists against its gallery's size, and
    enrolment photos it cannot serve."""
    problems: list[str] = []
    persons = service.request("GET", "/api/persons")
    health = service.request("GET", "/healthz")
    if persons.status_code != 200 or health.status_code != 200:
        return [f"service view unavailable: /api/persons {persons.status_code}, /healthz {health.status_code}"]
    listed = persons.json()
    size = health.json().get("gallery_size")
    if size is not None and size != len(listed):
        problems.append(f"the API lists {len(listed)} persons but the gallery holds {size} entries")
    for person in listed:
        photo = service.request("GET", f"/api/persons/{person['id']}/photo")
        if photo.status_code != 200:
            problems.append(f"photo of person {person['id']} answers {photo.status_code}")
    return problems


def lost_alerts(before: dict[str, int], served: list[dict[str, Any]]) -> list[str]:
    """Alerts a terminal received before the fault (id -> seq) that are not served now with the same seq."""
    now = {str(a["id"]): int(a["seq"]) for a in served}
    return [f"alert {aid} (seq {seq}) " + ("is gone" if aid not in now else f"now has seq {now[aid]}")
            for aid, seq in sorted(before.items(), key=lambda kv: kv[1]) if now.get(aid) != seq]


def leftover_temp_files(data_dir: Path) -> list[str]:
    return [str(p.relative_to(data_dir)) for p in sorted(data_dir.rglob("*.tmp"))]


class SmallDisk:
    """A small filesystem mounted on ``path`` to fill up: tmpfs when this process may mount, else an ext4
    image on a loop device. ``method`` says which; ``why_not`` says why neither worked."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.method: str | None = None
        self.why_not: list[str] = []

    def __enter__(self) -> SmallDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        tries = [("tmpfs", ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0700", "tmpfs",
                            str(self.path)])]
        image = self.path.with_suffix(".img")
        tries.append(("ext4 on a loop device", ["sh", "-c", f"truncate -s {self.size_mb}M {image} && "
                                                              f"mkfs.ext4 -q -F {image} && "
                                                              f"mount -o loop {image} {self.path}"]))
        for method, cmd in tries:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
            if done.returncode == 0:
                self.method = f"{method}, {self.size_mb} MiB"
                if method != "tmpfs":
                    os.chmod(self.path, 0o700)
                    for entry in self.path.iterdir():  # ext4's lost+found is not the service's
                        entry.rmdir()
                return self
            self.why_not.append(f"{method}: {done.stderr.strip() or done.returncode}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.method is not None:
            done = subprocess.run(["umount", str(self.path)], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)
        self.path.with_suffix(".img").unlink(missing_ok=True)


def fill(folder: Path, chunk: int = 1 << 16) -> int:
    """Write a filler file into ``folder`` until the filesystem is full; return the bytes written."""
    written = 0
    block = b"\0" * chunk
    with (folder / "filler.bin").open("wb") as fh:
        try:
            while True:
                fh.write(block)
                fh.flush()
                written += chunk
        except OSError:
            pass
    with contextlib.suppress(OSError), (folder / "filler-small.bin").open("wb") as fh:
        for _ in range(chunk):
            fh.write(b"\0")
            fh.flush()
            written += 1
    return written


@contextlib.contextmanager
def moved_away(path: Path) -> Iterator[Path]:
    """Rename ``path`` away for the duration (a camera file that vanishes), then put it back."""
    hidden = path.with_name(f".{path.name}.gone")
    os.replace(path, hidden)
    try:
        yield hidden
    finally:
        os.replace(hidden, path)
