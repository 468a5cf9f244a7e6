"""Gallery pages built once and shared: edges of one branch asking the same range at once get the same answer
from one build; a newer change (an erasure above all) is never answered from an older page."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from console.context import ConsoleContext
from console.enrolment import erase_person
from console.sync.pages import page_cache
from tests.console.conftest import add_branch
from tests.console.sync_helpers import add_edge, admin, put_person, version_of


def test_simultaneous_pulls_of_one_range_share_one_build_and_a_change_is_never_served_stale(
        client: TestClient, console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "A001", region="east")
    add_branch(console_ctx, "B001", region="east")
    first = put_person(console_ctx, "甲", "A001", scope_kind="all")
    since = version_of(console_ctx)
    second = put_person(console_ctx, "乙", "A001", scope_kind="all")
    auths = [add_edge(console_ctx, "A001", name=f"edge-{i}")[1] for i in range(8)]
    _, b_auth = add_edge(console_ctx, "B001")
    cache = page_cache(console_ctx)
    builds = cache.builds
    bodies: list[Any] = []
    start = threading.Barrier(len(auths))

    def pull(auth: dict[str, str]) -> None:
        start.wait()
        answer = client.get("/api/sync/gallery", params={"since": since}, headers=auth)
        bodies.append((answer.status_code, answer.headers.get("content-encoding"), answer.json()))

    threads = [threading.Thread(target=pull, args=(auth,)) for auth in auths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(bodies) == len(auths)
    assert all(b == (200, "gzip", bodies[0][2]) for b in bodies)
    assert [p["id"] for p in bodies[0][2]["persons"]] == [second] and bodies[0][2]["branch"] == "A001"
    assert cache.builds == builds + 1  # one build for the eight edges
    # another branch with the same scope rules still gets its own answer (its code, its scope)
    b = client.get("/api/sync/gallery", params={"since": since}, headers=b_auth).json()
    assert b["branch"] == "B001" and [p["id"] for p in b["persons"]] == [second]
    # an erasure moves the version: the same question now has a new answer, not the cached one
    erase_person(console_ctx, admin(console_ctx), first)
    after = client.get("/api/sync/gallery", params={"since": since}, headers=auths[0]).json()
    assert ([p["id"] for p in after["persons"]], after["erased"]) == ([second], [first])
    assert after["version"] == version_of(console_ctx)
    snapshot = client.get("/api/sync/gallery", params={"since": 0}, headers=auths[0]).json()
    assert [p["id"] for p in snapshot["persons"]] == [second]
    # an edge that does not accept gzip gets plain JSON
    plain = client.get("/api/sync/gallery", params={"since": 0}, headers={**auths[1], "Accept-Encoding": "identity"})
    assert plain.headers.get("content-encoding") is None and plain.json() == snapshot


def test_the_next_page_of_a_snapshot_is_built_before_the_edge_asks_and_served_from_that_build(
        client: TestClient, console_ctx: ConsoleContext) -> None:
    # given a snapshot of three pages for one edge
    add_branch(console_ctx, "A001", region="east")
    made = [put_person(console_ctx, f"贵宾{i}", "A001", scope_kind="all", person_id=f"{i:032x}") for i in range(5)]
    _, auth = add_edge(console_ctx, "A001")
    cache = page_cache(console_ctx)
    builds = cache.builds
    # when the edge takes the first page
    first = client.get("/api/sync/gallery", params={"since": 0, "limit": 2}, headers=auth).json()
    assert first["more"] and [p["id"] for p in first["persons"]] == made[:2]
    # then the console builds the second on its own (the edge stages the first meanwhile)
    for _ in range(600):
        if cache.builds >= builds + 2:
            break
        threading.Event().wait(0.05)
    assert cache.builds == builds + 2
    # and the edge's ask for it is answered from that build, with the right persons; the third follows alike
    second = client.get("/api/sync/gallery", params={"since": first["version"], "limit": 2, "after": first["cursor"]},
                        headers=auth).json()
    assert [p["id"] for p in second["persons"]] == made[2:4] and second["more"]
    assert cache.builds in (builds + 2, builds + 3)  # the third page may already be under way
    third = client.get("/api/sync/gallery", params={"since": first["version"], "limit": 2, "after": second["cursor"]},
                       headers=auth).json()
    assert [p["id"] for p in third["persons"]] == made[4:] and not third["more"]
    assert cache.builds == builds + 3  # the last page has no next one to build


def test_a_served_snapshot_tells_how_long_pages_and_edge_waited_for_each_other(
        client: TestClient, console_ctx: ConsoleContext, caplog: pytest.LogCaptureFixture) -> None:
    # given a snapshot of two pages for one edge of A001
    add_branch(console_ctx, "A001", region="east")
    for i in range(3):
        put_person(console_ctx, f"贵宾{i}", "A001", scope_kind="all", person_id=f"{i:032x}")
    _, auth = add_edge(console_ctx, "A001")
    # when the edge takes both pages
    with caplog.at_level(logging.INFO, logger="console.sync.pages"):
        first = client.get("/api/sync/gallery", params={"since": 0, "limit": 2}, headers=auth).json()
        assert not [r for r in caplog.records if "served" in r.getMessage()]  # not before its last page
        client.get("/api/sync/gallery", params={"since": first["version"], "limit": 2, "after": first["cursor"]},
                   headers=auth)
    # then one line tells, at its last page, the pages served and both waits
    [line] = [r.getMessage() for r in caplog.records if "served" in r.getMessage()]
    found = re.fullmatch(r"sync: snapshot v\d+ of branch A001 served: 2 pages, edge asks waited ([\d.]+) s for pages, "
                         r"pages built ahead waited ([\d.]+) s for the edge", line)
    assert found is not None
