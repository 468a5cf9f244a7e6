"""Face population aggregates at the console (issue 16): kept per edge, encrypted, merged exactly per region and
face model, fetched by an edge of the region only; a moved branch leaves its old region's merge. Both backends."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from console.context import ConsoleContext
from console.tables import EdgeEvent, EdgePopulation
from tests.console.conftest import add_branch, add_token, add_user
from tests.console.test_sync_events import EPOCH, add_edge, bearer
from vision.population import FloatArray, PopulationStats

MODEL = "dlib_resnet_v1_flip"
EAST, NORTH = "华东", "华北"


def faces(seed: int, n: int, dim: int = 8) -> FloatArray:
    rng = np.random.default_rng(seed)
    x = 0.5 + rng.normal(size=(n, dim)) * np.linspace(0.4, 0.05, dim)
    out: FloatArray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def event(seq: int, stats: PopulationStats, *, model_id: str | None = None) -> dict[str, Any]:
    return {"seq": seq, "kind": "population", "at": "2026-03-02T10:00:00+00:00",
            "body": {"model_id": model_id or stats.model_id, "count": stats.count, "version": 1,
                     "stats": json.loads(stats.to_bytes())}}


def send(client: TestClient, token: str, *events: dict[str, Any], epoch: str = EPOCH) -> list[int]:
    r = client.post("/api/sync/events", json={"epoch": epoch, "events": list(events)}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return list(r.json()["acked"])


def region(client: TestClient, token: str, model_id: str = MODEL) -> PopulationStats | None:
    r = client.get("/api/sync/population", params={"model_id": model_id}, headers=bearer(token))
    if r.status_code == 404:
        assert r.json()["error"] == "no_population"
        return None
    assert r.status_code == 200, r.text
    return PopulationStats.from_bytes(json.dumps(r.json()["stats"]).encode(), model_id=model_id)


def test_the_regions_merge_equals_the_aggregate_of_all_its_faces_and_stays_in_the_region(
        client: TestClient, console_ctx: ConsoleContext) -> None:
    # given two edges of 华东 that sent their aggregates, a new edge of 华东 and one of 华北
    a = add_edge(console_ctx, add_branch(console_ctx, "A001", region=EAST))
    b = add_edge(console_ctx, add_branch(console_ctx, "B001", region=EAST))
    c = add_edge(console_ctx, add_branch(console_ctx, "C001", region=EAST))
    n = add_edge(console_ctx, add_branch(console_ctx, "N001", region=NORTH))
    a_faces, b_faces = faces(1, 300), faces(2, 200)
    assert send(client, a, event(1, PopulationStats.of(MODEL, a_faces))) == [1]
    assert send(client, b, event(7, PopulationStats.of(MODEL, b_faces))) == [7]

    # when the new edge of 华东 asks, it gets the exact merge of both
    merged = region(client, c)
    truth = PopulationStats.of(MODEL, np.vstack([a_faces, b_faces]))
    assert merged is not None and merged.count == 500
    np.testing.assert_allclose(merged.mean, truth.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.m2, truth.m2, rtol=0, atol=1e-10)
    # an edge of the region gets the others' (it merges its own itself); another model's or region's: none
    own_left_out = region(client, a)
    assert own_left_out is not None and own_left_out.count == 200
    assert region(client, c, "another-model") is None
    assert region(client, n) is None


def test_the_newest_aggregates_win_a_replay_changes_nothing_and_bad_ones_are_acked_not_kept(
        client: TestClient, console_ctx: ConsoleContext) -> None:
    a = add_edge(console_ctx, add_branch(console_ctx, "A001", region=EAST))
    c = add_edge(console_ctx, add_branch(console_ctx, "C001", region=EAST))
    old, new = PopulationStats.of(MODEL, faces(1, 100)), PopulationStats.of(MODEL, faces(1, 400))
    send(client, a, event(1, old), event(5, new))
    send(client, a, event(1, old))  # re-sent after a lost acknowledgement
    got = region(client, c)
    assert got is not None and got.count == 400
    # a body that is not aggregates, or names another model than its own: the batch goes on, nothing is kept
    bad = event(9, old)
    bad["body"]["stats"]["m2"] = "not base64"
    assert send(client, a, bad, event(10, old, model_id="other")) == [9, 10]
    got = region(client, c)
    assert got is not None and got.count == 400
    # a new store epoch at the box (its database made anew) starts its seqs again: its aggregates are the newest
    send(client, a, event(1, old), epoch="f" * 32)
    got = region(client, c)
    assert got is not None and got.count == 100


def test_the_aggregates_are_stored_encrypted_and_the_event_keeps_only_a_stub(
        client: TestClient, console_ctx: ConsoleContext) -> None:
    a = add_edge(console_ctx, add_branch(console_ctx, "A001", region=EAST))
    stats = PopulationStats.of(MODEL, faces(3, 64))
    send(client, a, event(1, stats))
    doc = json.loads(stats.to_bytes())
    with console_ctx.db.transaction() as session:
        body = session.scalars(select(EdgeEvent.body).where(EdgeEvent.kind == "population")).one()
        kept = session.scalars(select(EdgePopulation)).one()
        raw = b"".join(bytes(r[0]) for r in session.execute(text("SELECT stats FROM edge_populations")))
        events_text = " ".join(str(r[0]) for r in session.execute(text("SELECT body FROM edge_events")))
    assert body == {"model_id": MODEL, "count": 64, "version": 1}
    assert (kept.model_id, kept.count) == (MODEL, 64)
    for plain in (doc["mean"].encode(), doc["m2"][:40].encode(), stats.mean.astype("<f8").tobytes()[:16], b"mean"):
        assert plain not in raw
    assert doc["mean"] not in events_text and "m2" not in events_text


def test_a_branch_moved_to_another_region_leaves_its_old_regions_merge(
        client: TestClient, console_ctx: ConsoleContext) -> None:
    a = add_edge(console_ctx, add_branch(console_ctx, "A001", region=EAST))
    b = add_edge(console_ctx, add_branch(console_ctx, "B001", region=EAST))
    c = add_edge(console_ctx, add_branch(console_ctx, "C001", region=EAST))
    n = add_edge(console_ctx, add_branch(console_ctx, "N001", region=NORTH))
    send(client, a, event(1, PopulationStats.of(MODEL, faces(1, 300))))
    send(client, b, event(1, PopulationStats.of(MODEL, faces(2, 200))))
    admin = {"Authorization": f"Bearer {add_token(console_ctx, add_user(console_ctx, 'root', 'admin'))}"}
    assert client.patch("/api/branches/A001", json={"region": NORTH}, headers=admin).status_code == 200
    east, north = region(client, c), region(client, n)
    assert east is not None and east.count == 200
    assert north is not None and north.count == 300


def test_only_an_edge_token_reads_a_regions_population(client: TestClient, console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "A001", region=EAST)
    user = add_token(console_ctx, add_user(console_ctx, "root", "admin"))
    assert client.get("/api/sync/population", params={"model_id": MODEL}).status_code == 401
    assert client.get("/api/sync/population", params={"model_id": MODEL}, headers=bearer(user)).status_code == 403
