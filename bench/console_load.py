"""Concurrent clients of the console's persons list, in a process of their own (so that their work does not
share the server's interpreter lock): ``clients`` asyncio tasks, each sending its requests one after another
on one kept-alive connection, every latency measured at the client (from sending the request to the last byte
of the answer).

Two clients do the same: ``httpx`` (httpx.AsyncClient; it parses every header into objects and gunzips the
body) and ``raw`` (asyncio streams: one request line and three headers written, the status line and
Content-Length read, the body read to its end and not decoded). Both send the same headers that matter
(``Authorization``, ``Accept-Encoding: gzip, deflate``). On a 2-core box the load generator shares the cores with
the server; the raw client takes a small part of what httpx takes, which leaves more of them to the server.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx


@dataclass(frozen=True, slots=True)
class LoadPlan:
    url: str
    token: str
    clients: int
    requests_per_client: int
    paths: tuple[str, ...]  # each request takes one at random
    seed: int = 0
    client: str = "httpx"  # or "raw"


async def _client(plan: LoadPlan, index: int, latencies: list[float], errors: list[str]) -> None:
    rng = random.Random(plan.seed * 1000 + index)
    headers = {"Authorization": f"Bearer {plan.token}"}
    async with httpx.AsyncClient(base_url=plan.url, headers=headers, timeout=60) as client:
        for _ in range(plan.requests_per_client):
            path = rng.choice(plan.paths)
            started = time.perf_counter()
            response = await client.get(path)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                errors.append(f"{response.status_code} {path}")


async def _raw_client(plan: LoadPlan, index: int, latencies: list[float], errors: list[str]) -> None:
    rng = random.Random(plan.seed * 1000 + index)
    url = urlsplit(plan.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    head = (f"Host: {url.netloc}\r\nAuthorization: Bearer {plan.token}\r\n"
            "Accept-Encoding: gzip, deflate\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(plan.requests_per_client):
            path = rng.choice(plan.paths)
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\n".encode() + head)
            status, length = _status_and_length(await reader.readuntil(b"\r\n\r\n"))
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                errors.append(f"{status} {path}")
    finally:
        writer.close()


def _status_and_length(head: bytes) -> tuple[int, int]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, int(value)
    raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")


async def _run(plan: LoadPlan) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    client = {"httpx": _client, "raw": _raw_client}[plan.client]
    started = time.perf_counter()
    await asyncio.gather(*(client(plan, i, latencies, errors) for i in range(plan.clients)))
    return latencies, errors, time.perf_counter() - started


def _child(plan: LoadPlan, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(_run(plan)))


def run_load(plan: LoadPlan, timeout_s: float = 900) -> tuple[list[float], list[str], float]:
    """(latencies in ms, error lines, wall seconds) of the whole plan, run in a spawned process."""
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    process = ctx.Process(target=_child, args=(plan, out), daemon=True)
    process.start()
    try:
        result: tuple[list[float], list[str], float] = out.get(timeout=timeout_s)
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
    return result
