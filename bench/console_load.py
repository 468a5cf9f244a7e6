"""Concurrent clients of the console's persons list, in a process of their own (so that their work does not
share the server's interpreter lock): ``clients`` asyncio tasks, each sending its requests one after another,
every latency measured at the client."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class LoadPlan:
    url: str
    token: str
    clients: int
    requests_per_client: int
    paths: tuple[str, ...]  # each request takes one at random
    seed: int = 0


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


async def _run(plan: LoadPlan) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(plan, i, latencies, errors) for i in range(plan.clients)))
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
