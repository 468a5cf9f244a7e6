"""The puller: one thread that keeps this box's gallery at the console's version, and reports the box's status.

It long-polls ``GET /api/sync/gallery?since=<applied>`` (the console answers at once when something changed, or
after ``long_poll_s`` with nothing), follows pages (``more``), collects every page of a snapshot before applying it
once, applies each change set atomically (:mod:`edge.sync.apply`), then posts ``/api/sync/status``. The status
also goes out every ``status_interval_s``: the long-poll's wait is cut so that it is never late.

The box must never go down with the WAN: a network error, a timeout or a 5xx backs off (0.5 s doubling to 30 s,
with jitter) and tries again. A 401 means the console revoked this box's token: that is logged as an error, shown
as the sync error in ``/healthz``, and the puller waits ``revoked_retry_s`` before it asks again (someone has to
register the box anew). A message on the MQTT topic (:mod:`edge.sync.mqtt`) wakes a waiting puller at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.sync.apply import GalleryApplier
from edge.sync.changes import ChangeSet, ChangeSetError, parse_answer
from edge.sync.client import ConsoleClient, ConsoleError, ConsoleUnauthorized
from edge.sync.config import SyncConfig

logger = logging.getLogger(__name__)


class Backoff:
    """0.5 s doubling to 30 s; each wait is drawn from [half, all] of the step so that a thousand branches that
    lost the same WAN do not come back in the same second."""

    def __init__(self, first_s: float = 0.5, cap_s: float = 30.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self._step = first_s

    def next(self) -> float:
        wait = random.uniform(self._step / 2, self._step)
        self._step = min(self._step * 2, self.cap_s)
        return wait

    def reset(self) -> None:
        self._step = self.first_s


@dataclass(frozen=True, slots=True)
class SyncHealth:
    state: str  # starting | ok | retrying | revoked | error
    version: int
    error: str | None
    last_ok_at: datetime | None
    last_error_at: datetime | None


class SyncPuller:
    def __init__(self, *, client: ConsoleClient, applier: GalleryApplier, config: SyncConfig, model_id: str,
                 software: str, cameras: Callable[[], list[dict[str, Any]]]) -> None:
        self._client = client
        self._applier = applier
        self._config = config
        self._model_id = model_id
        self._software = software
        self._cameras = cameras
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._backoff = Backoff()
        self._thread: threading.Thread | None = None
        self._state = "starting"
        self._error: str | None = None
        self._last_ok: datetime | None = None
        self._last_error: datetime | None = None
        self._status_due = 0.0
        self.applied = threading.Condition()  # notified after each applied change set (tests and the demo wait on it)
        self.last_snapshot: dict[str, float] = {}  # where the last multi-page snapshot's time went (see pull)

    # -- the thread ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sync-puller", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop asking. A long-poll in flight is not interrupted; its answer is dropped unapplied."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wake(self, version: int | None = None) -> None:
        """Pull at once (a broker announced ``version``); ignored when that version is already applied."""
        if version is None or version > self._applier.version:
            self._wake.set()

    @property
    def health(self) -> SyncHealth:
        return SyncHealth(self._state, self._applier.version, self._error, self._last_ok, self._last_error)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except ConsoleUnauthorized as exc:
                self._failed("revoked", f"the console refused this box's token (revoked?): {exc}; register the "
                                        "box again with `smartbranch edge register`")
                logger.error("SYNC STOPPED: %s; next try in %.0f s", self._error, self._config.revoked_retry_s)
                self._stop.wait(self._config.revoked_retry_s)
            except (ConsoleError, ChangeSetError) as exc:
                wait = self._backoff.next()
                self._failed("retrying", str(exc))
                logger.warning("sync: %s; trying again in %.1f s", exc, wait)
                self._sleep(wait)
            except Exception as exc:  # never take the box down: an apply that failed is retried from the same since
                wait = self._backoff.next()
                self._failed("error", f"{type(exc).__name__}: {exc}")
                logger.exception("sync: unexpected error; trying again in %.1f s", wait)
                self._sleep(wait)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _failed(self, state: str, error: str) -> None:
        self._state, self._error, self._last_error = state, error, datetime.now(UTC)

    def _ok(self) -> None:
        self._state, self._error, self._last_ok = "ok", None, datetime.now(UTC)
        self._backoff.reset()

    def catch_up(self, max_rounds: int = 1000) -> int:
        """Before the cameras start: pull and apply without waiting until the console has nothing newer, so that a
        box that was off during changes greets nobody from an old gallery. Returns the version held; a console
        that cannot be reached is logged and the box starts on what it has (the thread goes on trying)."""
        try:
            for _ in range(max_rounds):
                if not self.pull(0.0):
                    break
            self.report()
            self._ok()
        except ConsoleUnauthorized as exc:
            self._failed("revoked", f"the console refused this box's token (revoked?): {exc}")
            logger.error("sync: catching up at start failed: %s", self._error)
        except (ConsoleError, ChangeSetError) as exc:
            self._failed("retrying", str(exc))
            logger.warning("sync: could not catch up with the console at start (%s); starting on gallery version "
                           "%s", exc, self._applier.version)
        return self._applier.version

    # -- one round -------------------------------------------------------------------------------------------------
    def step(self) -> bool:
        """One long-poll (all pages of a snapshot), its apply and, when due, the status report; whether it applied."""
        if time.monotonic() >= self._status_due:
            self.report()
        wait = max(0.0, min(self._config.long_poll_s, self._status_due - time.monotonic()))
        if self._wake.is_set():
            self._wake.clear()
            wait = 0.0
        started = time.monotonic()
        applied = self.pull(wait)
        if self._stop.is_set():
            return False
        if applied:
            with self.applied:
                self.applied.notify_all()
            self.report()
        self._ok()
        if not applied and time.monotonic() - started < 0.5:  # answered at once with nothing: no spinning
            self._sleep(0.5)
        return applied

    def pull(self, wait_s: float) -> bool:
        """Ask for the changes since the version held and apply them; whether anything was applied.

        A delta page is complete up to its version, so it is applied alone (a next page comes in the next round).
        A snapshot of one page is applied as it is; one of several pages is staged page by page in the store
        (:mod:`edge.sync.stage`: never all in memory, at most two pages at a time), its next pages asked with
        ``since=<its version>&after=<cursor>`` (each asked for while the one before is staged), and applied once
        after the last one.
        """
        since = self._applier.version
        started = time.monotonic()
        body = self._client.gallery(since=since, model_id=self._model_id, wait_s=wait_s,
                                    limit=self._config.page_limit)
        page, more = parse_answer(body)
        if self._stop.is_set():
            return False
        if page.snapshot and more:
            self._pull_snapshot(page, more, body, first_s=time.monotonic() - started)
            return True
        if page.empty and page.version == since and (not page.snapshot or not self._applier.synced_ids()):
            return False  # nothing new (an empty snapshot at the version held: a console with nobody in scope yet)
        self._applier.apply(page)
        return True

    def _pull_snapshot(self, page: ChangeSet, more: bool, body: dict[str, Any], *, first_s: float) -> None:
        """Stage every page of a snapshot (the next one asked for while this one is staged), then apply it once.

        :attr:`last_snapshot` tells where the time went: ``first_page_s`` (the first page asked and received),
        ``wait_page_s`` (the box waited for a next page: the console, the network or its parsing was behind),
        ``stage_s`` (staging the pages), ``parse_s`` (parsing the next pages, their photos checked, on the fetch
        thread while the page before is staged), ``apply_s`` (the one
        apply), ``pages``; ``stage_cpu_s`` and ``apply_cpu_s``: the CPU this thread spent in those two (the rest
        of their time is the disk, or the wait for a core)."""
        timings = {"first_page_s": first_s, "wait_page_s": 0.0, "stage_s": 0.0, "stage_cpu_s": 0.0,
                   "parse_s": 0.0, "apply_s": 0.0, "apply_cpu_s": 0.0, "pages": 1.0}
        stage = self._applier.stage(page.version)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-fetch") as fetcher:
            while True:  # the next page is asked for while this one is staged: the console builds as we store
                upcoming: Future[tuple[dict[str, Any], ChangeSet, bool, float]] | None = None
                if more:
                    if not body.get("cursor") or self._stop.is_set():
                        raise ChangeSetError("a snapshot page says more=true but gives no cursor"
                                             if not self._stop.is_set() else "stopped in the middle of a snapshot")
                    upcoming = fetcher.submit(self._next_page, page.version, str(body["cursor"]))
                mark, cpu = time.monotonic(), time.thread_time()
                stage.add(page, list(body.get("persons") or []))
                timings["stage_s"] += time.monotonic() - mark
                timings["stage_cpu_s"] += time.thread_time() - cpu
                if upcoming is None:
                    break
                mark = time.monotonic()
                body, page, more, parse_s = upcoming.result()
                timings["wait_page_s"] += time.monotonic() - mark
                timings["parse_s"] += parse_s
                timings["pages"] += 1
        mark, cpu = time.monotonic(), time.thread_time()
        self._applier.apply_staged(stage)
        timings["apply_s"] = time.monotonic() - mark
        timings["apply_cpu_s"] = time.thread_time() - cpu
        self.last_snapshot = timings

    def _next_page(self, version: int, cursor: str) -> tuple[dict[str, Any], ChangeSet, bool, float]:
        """A next snapshot page, asked for and parsed (its photos checked) on the fetch thread, so that parsing it
        overlaps the staging of the page before; (body, page, more, seconds spent parsing)."""
        body = self._client.gallery(since=version, model_id=self._model_id, wait_s=0, limit=self._config.page_limit,
                                    extra={"after": cursor})
        mark = time.monotonic()
        page, more = parse_answer(body)
        return body, page, more, time.monotonic() - mark

    def report(self) -> dict[str, Any]:
        """Post the status; the erasures it confirms stop being reported once the console took them."""
        erased = self._applier.erased_pending()
        failures = self._applier.embed_failures()
        report = {"gallery_version": self._applier.version, "model_id": self._model_id, "software": self._software,
                  "cameras": self._cameras(), "erased_confirmed": erased,
                  "embed_failures": [{"person_id": k, "code": v} for k, v in sorted(failures.items())]}
        self._status_due = time.monotonic() + self._config.status_interval_s
        answer = self._client.status(report)
        if erased:
            self._applier.confirmed(erased)
        return answer
