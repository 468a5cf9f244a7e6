"""The sender: one thread that carries the outbox to the console and uploads clip files behind it.

- Events go in batches of at most 500, oldest first, gzip-compressed, to ``POST /api/sync/events`` with the
  store's epoch. The console answers the seqs it holds (stored now or before); only those are marked sent, so a
  batch lost on the way, or answered with an error, is sent again, and the console's unique key (edge, epoch,
  seq) makes the repeat harmless: nothing is lost and nothing is stored twice.
- While the WAN or the console is down (a network error, a timeout, a 5xx, a refused token) the thread waits
  with back-off: 0.5 s doubling to 30 s, each wait jittered so that a thousand branches coming back after an
  outage do not knock on the console in step. Nothing it meets ends the thread: the box keeps serving its
  branch with or without the centre.
- Clip files go after the events, one whole file per ``PUT /api/sync/clips/{id}`` (the MP4, decrypted from the
  edge's encrypted file; the console encrypts it again at rest), under a bandwidth cap (``clip_upload_kbps``,
  a token bucket), so a clip never crowds out the branch's other traffic. A failed upload is simply repeated
  later (clips are small, so resuming means sending the whole file again). The clip stays on the edge either
  way; its retention is the edge's own.
- Every tick it also writes the periodic events (closed hours' ``stats_hourly``, ``camera_health``) and prunes
  sent rows older than the retention.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from edge.review.store import ReviewStore
from edge.store.db import Store
from edge.sync.outbox import Outbox, stage_camera_health, stage_hourly_stats
from vault.clip_file import ClipReader
from vault.errors import ClipFileError

logger = logging.getLogger(__name__)

GZIP_OVER_BYTES = 1024
UPLOAD_CHUNK_BYTES = 16 * 1024
MAX_CLIP_ATTEMPTS = 20  # a clip the console keeps refusing (damaged file) is given up after this many tries


class Backoff:
    """0.5 s doubling to 30 s; each wait is drawn from [d/2, d] (jitter), so the mean still doubles."""

    def __init__(self, first_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None) -> None:
        self.first_s, self.cap_s = first_s, cap_s
        self._rng = rng or random.Random()
        self._next = first_s

    def failed(self) -> float:
        """The wait before the next try after a failure."""
        base = self._next
        self._next = min(self.cap_s, base * 2)
        return base / 2 + self._rng.random() * base / 2

    def succeeded(self) -> None:
        self._next = self.first_s


class TokenBucket:
    """A byte budget refilled at ``rate`` bytes/s up to ``burst`` bytes; :meth:`take` waits for its bytes.

    ``clock`` and ``sleep`` are injected so its arithmetic is testable without waiting."""

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be > 0")
        self.rate, self.burst = rate, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = burst
        self._at = clock()

    @classmethod
    def for_kbps(cls, kbps: float, **kwargs: Any) -> TokenBucket:
        """A cap of ``kbps`` kilobits per second, with a quarter second's worth (at least one chunk) of burst."""
        rate = kbps * 1000 / 8
        return cls(rate, max(float(UPLOAD_CHUNK_BYTES), rate / 4), **kwargs)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def wait_for(self, n: int) -> float:
        """Seconds until ``n`` bytes may go (0 when they may go now); takes nothing."""
        self._refill()
        return max(0.0, (min(n, self.burst) - self._tokens) / self.rate)

    def take(self, n: int) -> None:
        """Wait until ``n`` bytes may go, then spend them (a request larger than the burst goes in parts)."""
        left = n
        while left > 0:
            part = int(min(left, self.burst))
            delay = self.wait_for(part)
            if delay > 0:
                self._sleep(delay)
                self._refill()
            self._tokens -= part
            left -= part


@dataclass(frozen=True, slots=True)
class SenderConfig:
    console_url: str
    clip_upload_kbps: float = 2000.0
    request_timeout_s: float = 15.0
    idle_s: float = 1.0  # wait between rounds when nothing is pending
    health_interval_s: float = 300.0
    retention_days: float = 7.0  # sent events are kept this long at the edge, then pruned
    batch: int = 500


class ConsoleDown(Exception):
    """The console could not be reached or answered with an error worth waiting out."""


class Sender:
    """Owns its thread and its HTTP client; ``start`` and ``stop`` come from the runtime."""

    def __init__(self, config: SenderConfig, *, store: Store, review: ReviewStore, token: Callable[[], str | None],
                 clip_key: bytes, tz: ZoneInfo, cameras: Callable[[], Sequence[dict[str, Any]]] | None = None,
                 transport: httpx.BaseTransport | None = None, bucket: TokenBucket | None = None) -> None:
        self.config = config
        self.outbox = Outbox(store)
        self._store, self._review, self._token, self._clip_key, self._tz = store, review, token, clip_key, tz
        self._cameras = cameras
        self._client = httpx.Client(base_url=config.console_url.rstrip("/"), timeout=config.request_timeout_s,
                                    transport=transport)
        self._bucket = bucket or TokenBucket.for_kbps(config.clip_upload_kbps)
        self._backoff = Backoff()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_health = 0.0
        self._last_prune = 0.0
        self.delivered = 0  # events the console acknowledged (read by tests and the status page)

    # -- the thread ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sync-sender", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.round()
            except ConsoleDown as exc:
                delay = self._backoff.failed()
                logger.warning("console not reachable (%s); next try in %.1f s", exc, delay)
                self._stop.wait(delay)
                continue
            except Exception:  # a bug here must not end the sync for good: log it and go on after a pause
                logger.exception("sync sender round failed")
                self._stop.wait(self._backoff.failed())
                continue
            self._backoff.succeeded()
            if not busy:
                self._stop.wait(self.config.idle_s)

    def round(self, now: datetime | None = None) -> bool:
        """One round: periodic events, one batch of events, then clips if the events are all sent. True when
        more work is waiting (the thread goes again at once). Raises :class:`ConsoleDown`."""
        now = now or datetime.now(UTC)
        self._produce(now)
        if self.send_batch():
            return True
        return self.upload_clips()

    def _produce(self, now: datetime) -> None:
        stage_hourly_stats(self._store, self._review, self._tz, now)
        mono = time.monotonic()
        health_due = not self._last_health or mono - self._last_health >= self.config.health_interval_s
        if self._cameras is not None and health_due:
            self._last_health = mono
            stage_camera_health(self._store, self._cameras(), now)
        if not self._last_prune or mono - self._last_prune >= 3600:
            self._last_prune = mono
            pruned = self.outbox.prune(sent_before=now - timedelta(days=self.config.retention_days))
            if pruned:
                logger.info("outbox: pruned %s sent events", pruned)

    # -- HTTP --------------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        token = self._token()
        if not token:
            raise ConsoleDown("this edge has no console token (smartbranch edge register)")
        return {"Authorization": f"Bearer {token}"}

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:  # refused, reset, timed out, DNS: the WAN or the console is down
            raise ConsoleDown(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (401, 403, 408, 429):
            raise ConsoleDown(f"{method} {path} answered {response.status_code}: {response.text[:200]}")
        return response

    def send_batch(self) -> bool:
        """Send the oldest unsent events; True when a full batch went (more may wait)."""
        events = self.outbox.pending(self.config.batch)
        if not events:
            return False
        payload = json.dumps({"epoch": self.outbox.epoch, "events": [e.wire() for e in events]},
                             separators=(",", ":")).encode()
        headers = {**self._headers(), "Content-Type": "application/json"}
        if len(payload) > GZIP_OVER_BYTES:
            payload, headers["Content-Encoding"] = gzip.compress(payload, compresslevel=5), "gzip"
        response = self._request("POST", "/api/sync/events", content=payload, headers=headers)
        if response.status_code != 200:
            raise ConsoleDown(f"events refused with {response.status_code}: {response.text[:200]}")
        acked = [int(s) for s in response.json().get("acked", [])]
        self.outbox.mark_sent(acked)
        self.delivered += len(acked)
        return len(events) >= self.config.batch and len(acked) == len(events)

    def upload_clips(self) -> bool:
        """Upload the oldest owed clip file; True when more are owed. One per round, so that new events never
        wait behind a queue of clips going up under the cap."""
        owed = self.outbox.clips_to_upload(limit=2)
        if owed and not self._stop.is_set():
            self._upload(owed[0])
        return len(owed) > 1

    def _upload(self, clip_id: str) -> None:
        clip = self._review.get_clip(clip_id)
        if clip is None or clip.expired:
            self.outbox.clip_done(clip_id, "gone")
            return
        try:
            with ClipReader(clip.path, self._clip_key) as reader:
                data = b"".join(reader.iter_range(0, reader.size))
        except FileNotFoundError:
            logger.warning("clip %s: file %s is gone; not uploaded", clip_id, clip.path)
            self.outbox.clip_done(clip_id, "gone")
            return
        except ClipFileError as exc:
            logger.error("clip %s: file damaged, not uploaded: %s", clip_id, exc)
            self.outbox.clip_done(clip_id, "damaged")
            return
        headers = {**self._headers(), "Content-Type": "video/mp4",
                   "X-Content-SHA256": hashlib.sha256(data).hexdigest()}
        response = self._request("PUT", f"/api/sync/clips/{clip_id}", content=self._throttled(data),
                                 headers={**headers, "Content-Length": str(len(data))})
        if response.status_code in (200, 201):
            self.outbox.clip_done(clip_id, "uploaded")
            return
        logger.warning("clip %s: upload refused (%s): %s", clip_id, response.status_code, response.text[:200])
        attempts = self.outbox.clip_retry_later(clip_id)
        if attempts >= MAX_CLIP_ATTEMPTS:
            self.outbox.clip_done(clip_id, "refused")

    def _throttled(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), UPLOAD_CHUNK_BYTES):
            chunk = data[start:start + UPLOAD_CHUNK_BYTES]
            self._bucket.take(len(chunk))
            yield chunk
