"""Region population over real HTTP (issue 16, "Once the console exists, it can merge the aggregates of a region's
branches"): a real console (console.app over a migrated SQLite file, on a loopback port) and real edge stores,
adapters and senders. Two boxes of 华东 send their aggregates through the outbox; the console's merge equals the
aggregates of all their faces; a third, new box of 华东 starts from the region's statistics merged with its own
(``/healthz`` source ``region+own``); a box of 华北 never receives them; no float array is stored in the clear."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from alerts.server import ServerThread
from console.app import create_app
from console.config import ConsoleConfig, DatabaseConfig
from console.context import ConsoleContext
from console.security import digest, new_secret
from console.tables import Branch, Edge, EdgeEvent
from edge.api.adaptation import adaptation_public
from edge.faces.adapt import PopulationAdapter
from edge.faces.config import AdaptationSettings
from edge.review.store import ReviewStore
from edge.store.db import Store
from edge.store.tables import OutboxRow
from edge.sync.client import ConsoleClient
from edge.sync.population import region_prior_fetcher
from edge.sync.sender import Sender, SenderConfig
from tests.waiting import free_port
from vision.gallery import Gallery
from vision.population import FloatArray, PopulationStats

MODEL, DIM = "test-model", 16
EAST, NORTH = "华东", "华北"


class Console:
    """A real console with branches A/B/C in 华东 and N in 华北, one edge each (tokens kept)."""

    def __init__(self, folder: Path, template: Path) -> None:
        shutil.copyfile(template, folder / "console.db")
        config = ConsoleConfig(data_dir=folder / "console",
                               database=DatabaseConfig(url=f"sqlite:///{(folder / 'console.db').as_posix()}"))
        self.ctx = ConsoleContext.open(config)
        self.tokens: dict[str, str] = {}
        with self.ctx.db.transaction() as session:
            for code, region in (("A", EAST), ("B", EAST), ("C", EAST), ("N", NORTH)):
                branch = Branch(code=code, name=f"{code} 支行", region=region, timezone="Asia/Shanghai")
                session.add(branch)
                session.flush()
                self.tokens[code] = new_secret()
                session.add(Edge(branch_id=branch.id, name="box-1", token_hash=digest(self.tokens[code])))
        self.port = free_port()
        self.server = ServerThread(create_app(config, context=self.ctx), "127.0.0.1", self.port)
        self.server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture()
def console(tmp_path: Path, sqlite_template: Path) -> Iterator[Console]:
    c = Console(tmp_path, sqlite_template)
    yield c
    c.server.stop()
    c.ctx.close()


def faces(seed: int, n: int) -> FloatArray:
    """Unit vectors with a shared offset and a few dominant directions (a population the model does not know)."""
    rng = np.random.default_rng(seed)
    offset = np.full(DIM, 0.6)
    x = offset + rng.normal(size=(n, DIM)) * np.linspace(0.5, 0.05, DIM)
    unit = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # as the cameras' embeddings come
    out: FloatArray = unit.astype(np.float64)
    return out


class Box:
    def __init__(self, folder: Path, code: str, console: Console, *, region_prior: bool, apply: bool = False) -> None:
        folder.mkdir()
        self.store = Store(folder / "edge.db", branch_id=code, cipher=Fernet(Fernet.generate_key()))
        gallery = Gallery(MODEL, DIM)
        gallery.add("vip-1", faces(99, 1).astype(np.float32))
        settings = AdaptationSettings(min_faces=64, refit_interval_s=1e6, region_prior=region_prior,
                                      apply=apply)
        self.adapter = PopulationAdapter(settings, gallery=gallery, store=self.store, threshold=0.9)
        token = console.tokens[code]
        self.client = ConsoleClient(console.url, token)
        self.sender = Sender(SenderConfig(console.url), store=self.store, review=ReviewStore(self.store),
                             token=lambda: token, clip_key=b"k" * 32, tz=ZoneInfo("Asia/Shanghai"))

    def see(self, vectors: np.ndarray) -> None:
        for start in range(0, len(vectors), 7):  # the cameras' batches
            self.adapter.search(vectors[start:start + 7].astype(np.float32))

    def close(self) -> None:
        self.adapter.close()
        self.sender.stop()
        self.store.engine.dispose()


def test_a_regions_merge_is_exact_reaches_a_new_box_of_the_region_only_and_is_stored_encrypted(
        tmp_path: Path, console: Console) -> None:
    # given two boxes of 华东 that learned their own faces, and sent their aggregates at a refit
    a_faces, b_faces = faces(1, 300), faces(2, 500)
    a = Box(tmp_path / "a", "A", console, region_prior=True)
    b = Box(tmp_path / "b", "B", console, region_prior=True)
    for box, seen in ((a, a_faces), (b, b_faces)):
        box.see(seen)
        box.adapter.wait_refits(10)
        box.adapter.refit()
        assert box.adapter.state().source == "own"  # enough faces of its own: no prior
        box.sender.send_batch()
        assert box.sender.outbox.unsent() == 0

    # then the console's merge for a new box of 华东 is the aggregate of all their faces, numerically
    c = Box(tmp_path / "c", "C", console, region_prior=True, apply=True)
    body = c.client.population(model_id=MODEL)
    assert body is not None and body["region"] == EAST and body["edges"] == 2
    merged = PopulationStats.from_bytes(json.dumps(body["stats"]).encode())
    truth = PopulationStats.of(MODEL, np.vstack([a_faces, b_faces]))
    assert merged.count == truth.count == 800
    np.testing.assert_allclose(merged.mean, truth.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.m2, truth.m2, rtol=0, atol=1e-9)
    assert c.client.population(model_id="another-model") is None  # same model id only

    # when the new box has seen a few faces of its own and takes the region's as its prior
    c_faces = faces(3, 40)  # fewer than min_faces (64); more than the 32 a box saves at least
    c.see(c_faces)
    c.adapter.attach_region_prior(region_prior_fetcher(c.client, MODEL))
    assert c.adapter.wait_refits(30)
    state = c.adapter.state()
    assert (state.source, state.region_faces, state.faces_seen) == ("region+own", 800, 40)
    assert (state.branch, state.version, state.applied) == ("whiten", 1, True)  # adapted from day one
    health = adaptation_public(c.adapter).model_dump()  # as /healthz shows it
    assert (health["source"], health["region_faces"], health["applied"]) == ("region+own", 800, True)
    fitted = c.adapter._whitening  # the transform was fitted on the region's faces and its own, exactly
    assert fitted.adapted and fitted.count == 840
    both = PopulationStats.of(MODEL, np.vstack([a_faces, b_faces, c_faces]))
    assert fitted.mean is not None
    np.testing.assert_allclose(fitted.mean, both.mean, rtol=0, atol=1e-12)

    # and a box of 华北 never receives 华东's aggregates: it stays on its own faces
    n = Box(tmp_path / "n", "N", console, region_prior=True, apply=True)
    assert n.client.population(model_id=MODEL) is None
    n.see(faces(4, 20))
    n.adapter.attach_region_prior(region_prior_fetcher(n.client, MODEL))
    assert n.adapter.wait_refits(30)
    north = n.adapter.state()
    assert (north.source, north.region_faces, north.applied) == ("own", 0, False)
    assert north.reason is not None and "too few faces" in north.reason

    # and only the box's own aggregates were saved and go up: the prior is never counted twice
    c.adapter.close()
    c.sender.send_batch()
    again = a.client.population(model_id=MODEL)
    assert again is not None and again["count"] == 500 + 40  # B and C (its own faces only), without A itself

    # and nothing holds the aggregates in the clear: not the edges' outboxes, not the console's tables
    for box in (a, b, c):
        with box.store.session() as s:
            bodies = [json.loads(r) for r in s.scalars(select(OutboxRow.body).where(OutboxRow.kind == "population"))]
        assert bodies and all(set(body) == {"model_id", "count", "version"} for body in bodies)
    mean_text = json.loads(PopulationStats.of(MODEL, a_faces).to_bytes())["mean"]
    with console.ctx.db.transaction() as session:
        events = list(session.scalars(select(EdgeEvent).where(EdgeEvent.kind == "population")))
        blobs = [bytes(r[0]) for r in session.execute(text("SELECT stats FROM edge_populations"))]
    assert len(events) >= 3 and all("stats" not in e.body for e in events)
    assert len(blobs) == 3
    dump = b"".join(blobs) + (tmp_path / "console.db").read_bytes()
    assert mean_text.encode() not in dump and b'"m2"' not in dump
    assert a_faces.mean(axis=0).astype("<f8").tobytes()[:16] not in dump
    for box in (a, b, n):
        box.close()
    c.sender.stop()
    c.store.engine.dispose()
