"""The sender against a real console in-process (console.app over a migrated SQLite database, served on a
loopback port): events arrive exactly once across a console restart and a lost acknowledgement; clips go up
whole and checked; the back-off and the token bucket's arithmetic with an injected clock."""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select, update

from alerts.envelope import AlertDraft, AlertType, VipArrivalPayload
from alerts.server import ServerThread
from console.app import create_app
from console.config import ConsoleConfig, DatabaseConfig
from console.context import ConsoleContext
from console.security import digest, new_secret
from console.tables import Branch, CentralClip, CentralHour, CentralInteraction, Edge, EdgeEvent
from edge.review.store import ReviewStore
from edge.store.db import Store
from edge.store.tables import OutboxRow
from edge.sync.sender import Backoff, Sender, SenderConfig, TokenBucket
from tests.edge.review_helpers import clip_written, interaction
from tests.waiting import free_port, wait_for
from vault.clip_file import encrypt_bytes

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Console:
    """A real console with one branch and one registered edge (its token's hash in edges)."""

    def __init__(self, folder: Path, template: Path) -> None:
        shutil.copyfile(template, folder / "console.db")  # the session's migrated SQLite file
        config = ConsoleConfig(data_dir=folder / "console",
                               database=DatabaseConfig(url=f"sqlite:///{(folder / 'console.db').as_posix()}"))
        self.ctx = ConsoleContext.open(config)
        self.token = new_secret()
        with self.ctx.db.transaction() as session:
            branch = Branch(code="BJ001", name="北京分行", region="north", timezone="Asia/Shanghai")
            session.add(branch)
            session.flush()
            session.add(Edge(branch_id=branch.id, name="box-1", token_hash=digest(self.token)))
        self.port = free_port()
        self.server: ServerThread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = ServerThread(create_app(self.ctx.config, context=self.ctx), "127.0.0.1", self.port)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def events(self) -> list[tuple[str, int, str]]:
        with self.ctx.db.transaction() as session:
            return [(e, int(s), k) for e, s, k in session.execute(select(EdgeEvent.epoch, EdgeEvent.seq,
                                                                          EdgeEvent.kind))]


@pytest.fixture()
def console(tmp_path: Path, sqlite_template: Path) -> Iterator[Console]:
    c = Console(tmp_path, sqlite_template)
    c.start()
    yield c
    c.stop()
    c.ctx.close()


@pytest.fixture()
def edge(tmp_path: Path) -> tuple[Store, ReviewStore]:
    store = Store(tmp_path / "edge.db", branch_id="BJ001", cipher=Fernet(Fernet.generate_key()))
    return store, ReviewStore(store)


def draft(n: int) -> AlertDraft:
    now = datetime.now(UTC)
    return AlertDraft(type=AlertType.VIP_ARRIVAL, branch_id="BJ001", camera_id="c1", person_id=f"p{n}",
                      title="VIP 到店", captured_at=now,
                      payload=VipArrivalPayload(person_id=f"p{n}", name=f"客户{n}", tier="金卡", photo_url="/p",
                                                score=0.97, margin=0.1, votes=1, track_id=n, camera_name="正门",
                                                first_seen_at=now))


def unsent(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.sent.is_(False))) or 0)


CLIP_KEY = os.urandom(32)


def make_sender(console: Console, store: Store, review: ReviewStore, **config: float) -> Sender:
    return Sender(SenderConfig(console.url, idle_s=0.05, batch=int(config.pop("batch", 500)), **config), store=store,
                  review=review, token=lambda: console.token, clip_key=CLIP_KEY, tz=SHANGHAI)


def test_events_arrive_exactly_once_across_a_console_restart_and_a_lost_ack(
        console: Console, edge: tuple[Store, ReviewStore]) -> None:
    store, review = edge
    sender = make_sender(console, store, review, batch=7)
    for n in range(20):
        store.append(draft(n))
    sender.start()
    try:
        # given the first events delivered
        wait_for(lambda: unsent(store) == 0, what="the first 20 events")
        # when the console stops, the box goes on producing, and the console comes back on the same address
        console.stop()
        for n in range(20, 45):
            store.append(draft(n))
        time.sleep(0.5)  # the sender meets the closed port and backs off
        assert unsent(store) == 25
        console.start()
        wait_for(lambda: unsent(store) == 0, what="the events held back during the outage")
        # and when acknowledgements are lost (the box believes 10 delivered events were never taken)
        with store.session() as s, s.begin():
            s.execute(update(OutboxRow).where(OutboxRow.seq.between(5, 14)).values(sent=False))
        wait_for(lambda: unsent(store) == 0, what="the re-sent events")
    finally:
        sender.stop()
    # then the console holds each of the 45 events exactly once
    events = console.events()
    assert len(events) == 45
    assert sorted(seq for _, seq, _ in events) == list(range(1, 46))
    assert {epoch for epoch, _, _ in events} == {store.epoch}
    # and the real alert envelopes were counted once each as VIP arrivals of the branch's hours
    with console.ctx.db.transaction() as session:
        assert session.scalar(select(func.sum(CentralHour.vip_arrivals))) == 45


def test_a_clip_goes_up_whole_after_its_event_and_a_wrong_file_is_refused(
        tmp_path: Path, console: Console, edge: tuple[Store, ReviewStore]) -> None:
    store, review = edge
    plain = os.urandom(200_000)  # stands for the MP4; the console checks bytes, not codecs
    path = tmp_path / "clips" / "c1.sbclip"
    path.parent.mkdir()
    encrypt_bytes(plain, path, CLIP_KEY)
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    review.add_interaction(interaction("i-c1", start, duration_s=None, wait_s=4.0))  # the clip's episode
    review.end_interaction(interaction_id="i-c1", ended_at=start + timedelta(seconds=60), duration_s=60.0)
    review.add_clip(clip_written(path, "c1", started_at=start, duration_s=65.0, plain=plain))
    # a file sent before its clip event is unknown to the console (the edge tries again later)
    refused = httpx.put(f"{console.url}/api/sync/clips/c1", content=plain,
                        headers={"Authorization": f"Bearer {console.token}"})
    assert (refused.status_code, refused.json()["error"]) == (404, "clip_unknown")
    sender = make_sender(console, store, review)
    try:
        # when the sender runs its rounds: the events first, then the clip
        while sender.round():
            pass
        assert sender.round() is False
    finally:
        sender.stop()
    with console.ctx.db.transaction() as session:
        clip = session.get_one(CentralClip, "c1")
        key = clip.blob_key
        episode = session.get_one(CentralInteraction, "i-c1")
    assert (episode.clip_id, episode.wait_s, episode.duration_s) == ("c1", 4.0, 60.0)
    # then the console keeps the very bytes, encrypted at rest, and the clip stays on the edge
    assert key is not None and console.ctx.blobs.get(key) == plain
    assert plain not in (console.ctx.config.data_dir / "blobs" / key[:2] / key).read_bytes()
    assert path.is_file()
    # other bytes under the same clip id are refused; the same bytes again change nothing
    wrong = httpx.put(f"{console.url}/api/sync/clips/c1", content=plain[:-1] + b"x",
                      headers={"Authorization": f"Bearer {console.token}"})
    assert (wrong.status_code, wrong.json()["error"]) == (422, "sha256_mismatch")
    again = httpx.put(f"{console.url}/api/sync/clips/c1", content=plain,
                      headers={"Authorization": f"Bearer {console.token}"})
    assert again.status_code == 200
    with console.ctx.db.transaction() as session:
        assert session.get_one(CentralClip, "c1").blob_key == key


def test_the_sender_survives_no_console_at_all(tmp_path: Path, edge: tuple[Store, ReviewStore]) -> None:
    store, review = edge
    store.append(draft(1))
    sender = Sender(SenderConfig(f"http://127.0.0.1:{free_port()}", idle_s=0.05), store=store, review=review,
                    token=lambda: "t", clip_key=CLIP_KEY, tz=SHANGHAI)
    sender.start()
    time.sleep(0.3)
    assert sender._thread is not None and sender._thread.is_alive()  # backing off, not dead
    sender.stop()
    assert unsent(store) == 1


def test_backoff_doubles_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(rng=random.Random(1))
    waits = [backoff.failed() for _ in range(10)]
    bases = [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert all(b / 2 <= w <= b for w, b in zip(waits, bases, strict=True))
    assert len(set(waits)) == len(waits)  # jittered
    backoff.succeeded()
    assert 0.25 <= backoff.failed() <= 0.5


class FakeClock:
    """Time that moves only when the bucket sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_arithmetic_with_an_injected_clock() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000.0, burst=500.0, clock=clock, sleep=clock.sleep)
    bucket.take(500)  # the full burst goes at once
    assert clock.slept == []
    bucket.take(250)  # then 250 bytes at 1000 B/s: a quarter second
    assert clock.slept == [pytest.approx(0.25)]
    clock.now += 10  # idle time refills only up to the burst
    assert bucket.wait_for(500) == 0
    bucket.take(500)
    assert bucket.wait_for(100) == pytest.approx(0.1)
    # 5000 bytes from empty take 5 s in all (sent in parts no larger than the burst)
    start = clock.now
    bucket.take(5000)
    assert clock.now - start == pytest.approx(5.0)
    assert max(clock.slept) <= 0.5 + 1e-9


def test_kbps_cap_is_bytes_per_second() -> None:
    clock = FakeClock()
    bucket = TokenBucket.for_kbps(2000, clock=clock, sleep=clock.sleep)
    assert bucket.rate == 250_000.0
    bucket.take(int(bucket.burst))
    start = clock.now
    bucket.take(1_000_000)  # 1 MB at 2000 kbit/s: 4 s
    assert clock.now - start == pytest.approx(4.0)
