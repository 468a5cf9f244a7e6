"""Many edges long-polling at once hold neither server threads nor database connections while they wait:
60 waiting edges (more than the 40 threads of the pool), a status report answered meanwhile, and every one of
them gets the change when it comes."""

from __future__ import annotations

import asyncio

import httpx
from fastapi.concurrency import run_in_threadpool

from console.app import create_app
from console.context import ConsoleContext
from tests.console.conftest import add_branch
from tests.console.sync_helpers import add_edge, put_person, version_of

EDGES = 60


def test_sixty_waiting_edges_do_not_starve_the_server(console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "A001")
    auths = [add_edge(console_ctx, "A001", f"box-{i}")[1] for i in range(EDGES)]
    put_person(console_ctx, "已同步", "A001", scope_kind="all")  # the edges hold this version already
    since = version_of(console_ctx)
    app = create_app(console_ctx.config, context=console_ctx)

    async def scenario() -> tuple[list[bool], list[httpx.Response], str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            polls = [asyncio.create_task(client.get("/api/sync/gallery", headers=auth,
                                                    params={"since": since, "wait": 20})) for auth in auths]
            await asyncio.sleep(0.5)  # every poll has reached its wait
            report = await client.post("/api/sync/status", json={"gallery_version": since}, headers=auths[0])
            pending_during_report = [not p.done() for p in polls]
            assert report.status_code == 200, report.text
            person = await run_in_threadpool(put_person, console_ctx, "全行贵宾", "A001", scope_kind="all")
            return pending_during_report, list(await asyncio.gather(*polls)), person

    pending, answers, person = asyncio.run(scenario())
    assert all(pending)  # the report was served while all 60 were still waiting
    assert [a.status_code for a in answers] == [200] * EDGES
    assert all([p["id"] for p in a.json()["persons"]] == [person] for a in answers)
