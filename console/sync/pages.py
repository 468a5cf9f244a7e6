"""Gallery answers encoded once and shared: the JSON bytes of a page, gzip-compressed, kept a short while for
every edge that asks the same thing.

The rule: an answer is fully determined by the asking branch (its id, code and region: its scope), the request
(since, after, limit, snapshot, model id) and the console's version when it is built, because every write to
the gallery appends a change and so moves the version. The cache key is all of these; a newer change makes a new
key, so a cached page is never older than what the database would give (an erasure is never served from it).

- After an MQTT announcement the edges of a branch ask for the same range within the same second; the first
  builds the page (rows, photos, JSON, gzip) and the others wait for it instead of building it again.
- A snapshot page is built once per (scope, version) for every new or behind edge of that scope.
- Pages are encoded with :func:`json.dumps` directly (a page is megabytes of photos; the web framework's generic
  encoder walks every value) and compressed at level 1: the photos are JPEG, which gzip barely shrinks at any
  level, while the JSON around them shrinks well at the fastest one.
- The next page of a snapshot is built in the background as soon as an edge took the one before (its cursor
  gives the next ask's key), so the edge stages a page while the console builds the next.
- Entries expire after :data:`TTL_S` and the cache holds at most :data:`MAX_BYTES` (least recently used out).
- When a branch's snapshot has been served to its last page, one INFO line tells where its time went at the
  console: how long the edge's asks waited for their pages (built on the spot or still being built ahead) and how
  long pages built ahead waited for the edge to ask (the console was ahead of the box).
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from console.context import ConsoleContext
from console.sync.auth import EdgeCaller
from console.sync.feed import FeedRequest, gallery_page, poll_version

logger = logging.getLogger(__name__)

EXTRA_KEY = "sync_page_cache"
TTL_S = 30.0
MAX_BYTES = 256 * 1024 * 1024
GZIP_LEVEL = 1


@dataclass(frozen=True, slots=True)
class EncodedPage:
    version: int
    news: bool  # persons, erasures, a snapshot or more pages: worth ending a long-poll for
    gzipped: bytes
    cursor: str | None = None  # a snapshot page with more after it: where the next page starts

    def body(self, gzip_ok: bool) -> bytes:
        return self.gzipped if gzip_ok else gzip.decompress(self.gzipped)


def encode(page: dict[str, Any]) -> EncodedPage:
    raw = json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    news = bool(page["persons"] or page["erased"] or page["snapshot"] or page["more"])
    cursor = str(page["cursor"]) if page.get("snapshot") and page.get("more") and page.get("cursor") else None
    return EncodedPage(int(page["version"]), news, gzip.compress(raw, compresslevel=GZIP_LEVEL), cursor)


class PageCache:
    """Encoded pages by key, each built once (concurrent askers of one key wait for its builder)."""

    def __init__(self, ttl_s: float = TTL_S, max_bytes: int = MAX_BYTES) -> None:
        self.ttl_s, self.max_bytes = ttl_s, max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, EncodedPage]] = OrderedDict()
        self._building: dict[tuple[Any, ...], threading.Lock] = {}
        self._bytes = 0
        self._snapshots: dict[tuple[Any, ...], list[float]] = {}  # (branch, version): [pages, ask_s, ahead_idle_s]
        self.builds = 0  # how many pages were built (tests and the benchmark read it)

    def get(self, key: tuple[Any, ...], build: Callable[[], EncodedPage]) -> EncodedPage:
        while True:
            with self._lock:
                hit = self._entries.get(key)
                if hit is not None and hit[0] > time.monotonic():
                    self._entries.move_to_end(key)
                    return hit[1]
                builder = self._building.get(key)
                mine = builder is None
                if builder is None:
                    builder = self._building[key] = threading.Lock()
                    builder.acquire()
            if not mine:  # another thread builds this page: wait for it, then look again
                with builder:
                    continue
            try:
                page = build()
                with self._lock:
                    self._store(key, page)
                    self.builds += 1
                return page
            finally:
                with self._lock:
                    del self._building[key]
                builder.release()

    def built_at(self, key: tuple[Any, ...]) -> float | None:
        """When the page cached under ``key`` was built (time.monotonic), None when none is."""
        with self._lock:
            hit = self._entries.get(key)
            return None if hit is None else hit[0] - self.ttl_s

    def served(self, snapshot: tuple[Any, ...], ask_s: float, ahead_idle_s: float, last: bool) -> list[float] | None:
        """Count one served page of a snapshot; at its ``last`` page, its totals [pages, ask_s, ahead_idle_s]."""
        with self._lock:
            totals = self._snapshots.setdefault(snapshot, [0.0, 0.0, 0.0])
            totals[0] += 1
            totals[1] += ask_s
            totals[2] += ahead_idle_s
            return self._snapshots.pop(snapshot) if last else None

    def _store(self, key: tuple[Any, ...], page: EncodedPage) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old[1].gzipped)
        now = time.monotonic()
        for stale in [k for k, (expires, _p) in self._entries.items() if expires <= now]:
            self._bytes -= len(self._entries.pop(stale)[1].gzipped)
        while self._entries and self._bytes + len(page.gzipped) > self.max_bytes:
            self._bytes -= len(self._entries.popitem(last=False)[1][1].gzipped)
        if len(page.gzipped) <= self.max_bytes:
            self._entries[key] = (now + self.ttl_s, page)
            self._bytes += len(page.gzipped)


def page_cache(ctx: ConsoleContext) -> PageCache:
    cache = ctx.extras.get(EXTRA_KEY)
    if not isinstance(cache, PageCache):
        cache = ctx.extras.setdefault(EXTRA_KEY, PageCache())
    assert isinstance(cache, PageCache)
    return cache


def encoded_page(ctx: ConsoleContext, edge: EdgeCaller, req: FeedRequest) -> EncodedPage:
    """The answer to ``req`` from ``edge`` at the console's version now, from the cache or built into it.

    A snapshot page with more after it starts the build of the next page in the background, under the key the
    edge's next ask will have: the edge stages this page while the console builds the next, instead of the two
    taking turns. Only an edge's ask starts a build, so the console is never more than one page ahead."""
    if req.after is not None:  # a next snapshot page: the same answer whatever the snapshot flag says
        req = FeedRequest(req.since, req.model_id, req.limit, False, req.after)
    top = poll_version(ctx)
    cache = page_cache(ctx)
    key = _key(edge, req, top)
    asked = time.monotonic()
    page = cache.get(key, lambda: encode(gallery_page(ctx, edge, req, top=top)))
    if page.cursor is not None or req.after is not None:
        _count(cache, key, edge, page, asked, req.after is not None and page.cursor is None)
    if page.cursor is not None:
        ahead = FeedRequest(page.version, req.model_id, req.limit, False, page.cursor)
        threading.Thread(target=_build_ahead, args=(ctx, cache, edge, ahead, top), name="sync-page-ahead",
                         daemon=True).start()
    return page


def _count(cache: PageCache, key: tuple[Any, ...], edge: EdgeCaller, page: EncodedPage, asked: float,
           last: bool) -> None:
    built = cache.built_at(key)
    totals = cache.served((edge.branch_id, page.version), time.monotonic() - asked,
                          max(0.0, asked - built) if built is not None else 0.0, last)
    if totals is not None:
        logger.info("sync: snapshot v%s of branch %s served: %d pages, edge asks waited %.2f s for pages, "
                    "pages built ahead waited %.2f s for the edge", page.version, edge.branch_code, int(totals[0]),
                    totals[1], totals[2])


def _key(edge: EdgeCaller, req: FeedRequest, top: int) -> tuple[Any, ...]:
    return (edge.branch_id, edge.branch_code, edge.branch_region, req, top)


def _build_ahead(ctx: ConsoleContext, cache: PageCache, edge: EdgeCaller, req: FeedRequest, top: int) -> None:
    try:  # a page built at ``top``: when the version moved meanwhile the edge's ask misses it and builds anew
        cache.get(_key(edge, req, top), lambda: encode(gallery_page(ctx, edge, req, top=top)))
    except Exception:  # the edge's own ask builds the page again and reports what fails
        logger.exception("sync: building the next snapshot page ahead failed")
