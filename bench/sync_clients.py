"""The simulated edges of ``python -m bench.sync``, in a process of their own (spawned), so that their work does not
share an interpreter lock with the console or with the writer of the changes.

They are light HTTP clients that do what a box's puller does on the wire, not whole boxes: fifty real boxes would
be fifty dlib engines, FAISS indexes and SQLite stores on two cores, and the measure would be of the machine's
overload. Each one asks ``GET /api/sync/gallery`` with its own edge token and the version it holds, parses the
answer with the box's own parser (:func:`edge.sync.changes.parse_answer`), and records when each person arrived.
The apply at a box is measured on a real box in the snapshot phase.

- ``longpoll``: every edge long-polls (``wait=25``), as the box does without a broker.
- ``mqtt``: every edge polls at an interval (``wait=0`` every ``poll_s``) and runs the box's real MQTT waker
  (:class:`edge.sync.mqtt.MqttWaker`) on its branch's topic; an announcement newer than what it holds makes it
  pull at once. So the announcement, not the poll, is what brings the change.
- ``events``: a few edges each post batches of 500 events (gzip), as the box's sender does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import multiprocessing
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class EdgeLogin:
    token: str
    branch: str


@dataclass(frozen=True, slots=True)
class PullPlan:
    url: str
    edges: tuple[EdgeLogin, ...]
    since: int
    expected: int  # persons each edge waits for
    mode: str = "longpoll"  # longpoll | mqtt
    poll_s: float = 10.0
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    topic_prefix: str = "smartbranch"
    deadline_s: float = 120.0


@dataclass
class PullResult:
    arrivals: list[dict[str, float]] = field(default_factory=list)  # per edge: person id -> time.time() of arrival
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    ready_at: float = 0.0


async def _pull_once(client: httpx.AsyncClient, edge: EdgeLogin, since: int, wait: int) -> tuple[int, list[str]]:
    from edge.sync.changes import parse_answer

    answer = await client.get("/api/sync/gallery", params={"since": since, "model_id": "bench", "wait": wait,
                                                           "limit": 200},
                              headers={"Authorization": f"Bearer {edge.token}"})
    answer.raise_for_status()
    page, _more = parse_answer(answer.json())
    return page.version, list(page.persons)


async def _edge(plan: PullPlan, index: int, result: PullResult, wake: asyncio.Event | None,
                announced: list[int]) -> None:
    edge, since = plan.edges[index], plan.since
    seen = result.arrivals[index]
    stop = time.monotonic() + plan.deadline_s
    async with httpx.AsyncClient(base_url=plan.url, timeout=60) as client:
        while len(seen) < plan.expected and time.monotonic() < stop:
            try:
                if wake is not None:  # interval polling, woken by the broker's announcement
                    if announced[0] <= since:
                        wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(wake.wait(), plan.poll_s)
                    version, persons = await _pull_once(client, edge, since, 0)
                else:
                    version, persons = await _pull_once(client, edge, since, 25)
            except (httpx.HTTPError, ValueError) as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
                continue
            now = time.time()
            result.requests += 1
            for person in persons:
                seen.setdefault(person, now)
            since = max(since, version)


async def _pull_all(plan: PullPlan, ready: Any = None) -> PullResult:
    result = PullResult(arrivals=[{} for _ in plan.edges])
    loop = asyncio.get_running_loop()
    wakers: list[Any] = []
    events: list[asyncio.Event | None] = [None] * len(plan.edges)
    announced: list[list[int]] = [[0] for _ in plan.edges]
    if plan.mode == "mqtt":
        from edge.sync.config import MqttConfig
        from edge.sync.mqtt import MqttWaker

        config = MqttConfig(host=plan.mqtt_host, port=plan.mqtt_port, topic_prefix=plan.topic_prefix)
        for i, edge in enumerate(plan.edges):
            event = asyncio.Event()
            events[i] = event

            def wake(version: int, event: asyncio.Event = event, box: list[int] = announced[i]) -> None:
                box[0] = max(box[0], version)
                loop.call_soon_threadsafe(event.set)
            waker = MqttWaker(config, edge.branch, wake, client_id=f"bench-edge-{i}")
            waker.start()
            wakers.append(waker)
        deadline = time.monotonic() + 20
        while not all(w.connected for w in wakers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the subscriptions are made in on_connect
    result.ready_at = time.time()
    if ready is not None:
        loop.call_later(1.0, ready.set)  # by then every first request is in flight
    try:
        await asyncio.gather(*(_edge(plan, i, result, events[i], announced[i]) for i in range(len(plan.edges))))
    finally:
        for waker in wakers:
            waker.stop()
    return result


@dataclass(frozen=True, slots=True)
class EventPlan:
    url: str
    edges: tuple[EdgeLogin, ...]
    events_per_edge: int
    batch: int = 500


def _event(seq: int, at: datetime, branch: str) -> dict[str, Any]:
    """An alert event as a box's outbox holds it (the alert envelope's fields)."""
    return {"seq": seq, "kind": "alert", "at": at.isoformat(), "body": {
        "id": f"{branch}-{seq:012d}", "seq": seq, "type": "vip_arrival" if seq % 3 else "customer_unattended",
        "branch_id": branch, "camera_id": "entrance-1", "person_id": f"{seq % 997:032x}", "title": "VIP 到店",
        "captured_at": at.isoformat(), "created_at": at.isoformat(),
        "payload": {"kind": "vip_arrival", "name": f"贵宾{seq % 997}", "tier": "钻石", "score": 0.97}}}


async def _send_events(plan: EventPlan, edge: EdgeLogin, index: int, errors: list[str]) -> int:
    start = datetime.now(UTC) - timedelta(hours=1)
    stored = 0
    headers = {"Authorization": f"Bearer {edge.token}", "Content-Type": "application/json",
               "Content-Encoding": "gzip"}
    async with httpx.AsyncClient(base_url=plan.url, timeout=120) as client:
        for first in range(1, plan.events_per_edge + 1, plan.batch):
            seqs = range(first, min(first + plan.batch, plan.events_per_edge + 1))
            events = [_event(s, start + timedelta(milliseconds=s), edge.branch) for s in seqs]
            body = gzip.compress(json.dumps({"epoch": f"bench-epoch-{index}", "events": events}).encode(), 6)
            answer = await client.post("/api/sync/events", content=body, headers=headers)
            if answer.status_code != 200:
                errors.append(f"{answer.status_code} {answer.text[:200]}")
                continue
            stored += len(answer.json()["acked"])
    return stored


async def _events_all(plan: EventPlan) -> tuple[int, float, list[str]]:
    errors: list[str] = []
    started = time.perf_counter()
    counts = await asyncio.gather(*(_send_events(plan, e, i, errors) for i, e in enumerate(plan.edges)))
    return sum(counts), time.perf_counter() - started, errors


def _child(kind: str, plan: Any, out: multiprocessing.Queue, ready: Any) -> None:  # type: ignore[type-arg]
    logging.getLogger("edge.sync.mqtt").setLevel(logging.ERROR)  # fifty wakers saying goodbye at the end
    if kind != "pull":
        ready.set()
    out.put(asyncio.run(_pull_all(plan, ready) if kind == "pull" else _events_all(plan)))


class ClientProcess:
    """Runs one plan in a spawned process; ``result()`` waits for its answer."""

    def __init__(self, kind: str, plan: PullPlan | EventPlan) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
        self.ready = ctx.Event()
        self._process = ctx.Process(target=_child, args=(kind, plan, self._out, self.ready), daemon=True)
        self._process.start()

    def wait_ready(self, timeout_s: float = 120) -> None:
        if not self.ready.wait(timeout_s):
            raise RuntimeError("the simulated edges did not start")

    def result(self, timeout_s: float = 900) -> Any:
        try:
            return self._out.get(timeout=timeout_s)
        finally:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
