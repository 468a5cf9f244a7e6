"""The hub: persist before push, replay since seq, per-client bounded queues, ack broadcast."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from alerts.envelope import AlertDraft, AlertType, VipArrivalPayload
from alerts.errors import BadCursor
from alerts.hub import Hub
from edge.store.db import Store


def draft(n: int, branch: str = "b1") -> AlertDraft:
    now = datetime.now(UTC)
    return AlertDraft(type=AlertType.VIP_ARRIVAL, branch_id=branch, camera_id="c1", person_id=f"p{n}",
                      title="VIP 到店", captured_at=now,
                      payload=VipArrivalPayload(person_id=f"p{n}", name=f"客户{n}", tier="金卡", photo_url="/p",
                                                score=0.97, margin=0.1, votes=1, track_id=n, camera_name="正门",
                                                first_seen_at=now))


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "edge.db", branch_id="b1", cipher=Fernet(Fernet.generate_key()))


def test_seq_is_monotonic_per_branch_and_survives_restart(store: Store, tmp_path: Path) -> None:
    first = [store.append(draft(i)) for i in range(3)]
    other = store.append(draft(9, branch="b2"))
    assert [a.seq for a in first] == [1, 2, 3]
    assert other.seq == 1
    reopened = Store(tmp_path / "edge.db", branch_id="b1", cipher=Fernet(Fernet.generate_key()))
    assert reopened.append(draft(4)).seq == 4
    assert [a.seq for a in reopened.since(2)] == [3, 4]


def test_wal_mode_is_on(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_ack_is_recorded_once(store: Store) -> None:
    alert = store.append(draft(1))
    first = store.ack(alert.id, "lobby-1")
    second = store.ack(alert.id, "lobby-2")
    assert first is not None and second is not None
    assert second.acked_by == "lobby-1" and second.acked_at == first.acked_at
    assert store.ack("missing", "x") is None


def test_publish_persists_before_push_and_replays(store: Store) -> None:
    async def scenario() -> None:
        hub = Hub(store, queue_size=8)
        hub.bind_loop(asyncio.get_running_loop())
        sub, replay = await hub.subscribe("t1", since=None)
        assert replay.alerts == []
        # when two alerts are published
        a1 = hub.publish(draft(1))
        a2 = hub.publish(draft(2))
        # then they are in the store (persisted first) and in the terminal's queue in order
        assert [a.seq for a in store.since(0)] == [1, 2]
        got = [sub.queue.get_nowait().alert for _ in range(2)]
        assert [a.id for a in got if a is not None] == [a1.id, a2.id]
        # and a terminal that reconnects with since=1 gets only what it missed
        _, missed = await hub.subscribe("t2", since=1)
        assert [a.seq for a in missed.alerts] == [2] and not missed.reset
    asyncio.run(scenario())


def test_slow_terminal_is_cut_off_without_stalling_others(store: Store) -> None:
    async def scenario() -> None:
        hub = Hub(store, queue_size=2)
        hub.bind_loop(asyncio.get_running_loop())
        slow, _ = await hub.subscribe("slow", None)
        fast, _ = await hub.subscribe("fast", None)
        for i in range(5):
            hub.publish(draft(i))
            fast.queue.get_nowait()  # the fast terminal keeps up
        # then the slow one is marked for closing (it will replay on reconnect), the fast one got all
        assert slow.overflowed.is_set()
        assert hub.dropped_clients == 1
        assert [a.seq for a in store.since(0)] == [1, 2, 3, 4, 5]
    asyncio.run(scenario())


def test_ack_is_broadcast_to_every_terminal(store: Store) -> None:
    async def scenario() -> None:
        hub = Hub(store)
        hub.bind_loop(asyncio.get_running_loop())
        a, _ = await hub.subscribe("a", None)
        b, _ = await hub.subscribe("b", None)
        alert = hub.publish(draft(1))
        a.queue.get_nowait()
        b.queue.get_nowait()
        hub.ack(alert.id, "lobby-1")
        for sub in (a, b):
            message = sub.queue.get_nowait()
            assert message.type == "ack" and message.ack is not None
            assert message.ack.alert_id == alert.id and message.ack.acked_by == "lobby-1"
        assert hub.ack("unknown", "x") is None
    asyncio.run(scenario())


def test_publish_from_another_thread_reaches_the_loop(store: Store) -> None:
    async def scenario() -> None:
        hub = Hub(store)
        hub.bind_loop(asyncio.get_running_loop())
        sub, _ = await hub.subscribe("t", None)
        alert = await asyncio.to_thread(hub.publish, draft(1))
        message = await asyncio.wait_for(sub.queue.get(), timeout=2)
        assert message.alert is not None and message.alert.id == alert.id
    asyncio.run(scenario())


def test_failing_listener_does_not_break_publishing(store: Store) -> None:
    hub = Hub(store)
    seen: list[int] = []

    def bad(_alert: object) -> None:
        raise RuntimeError("printer jammed")

    hub.add_listener(bad)
    hub.add_listener(lambda a: seen.append(a.seq))
    hub.publish(draft(1))
    assert seen == [1]


def test_concurrent_publishers_push_in_seq_order(store: Store) -> None:
    # given several camera threads publishing at once
    async def scenario() -> None:
        hub = Hub(store, queue_size=1000)
        hub.bind_loop(asyncio.get_running_loop())
        sub, _ = await hub.subscribe("t", None)

        def camera(offset: int) -> None:
            for i in range(25):
                hub.publish(draft(offset + i))

        await asyncio.gather(*(asyncio.to_thread(camera, 100 * c) for c in range(4)))
        await asyncio.sleep(0.1)
        seqs = []
        while not sub.queue.empty():
            message = sub.queue.get_nowait()
            assert message.alert is not None
            seqs.append(message.alert.seq)
        # then the terminal receives every alert in seq order (none would be skipped as a replay duplicate)
        assert seqs == list(range(1, 101))
    asyncio.run(scenario())


# ---------------------------------------------------------------- the stream's epoch and cursor

OTHER_EPOCH = "0" * 32


def test_since_ahead_of_the_log_replays_from_the_start_and_says_so(store: Store) -> None:
    async def scenario() -> None:
        hub = Hub(store)
        hub.bind_loop(asyncio.get_running_loop())
        for i in range(6):
            hub.publish(draft(i))
        # when a terminal comes back with a cursor ahead of the log (it saw seq 57; the log ends at 6)
        sub, replay = await hub.subscribe("t", since=57)
        # then it gets everything from the start, the true last seq and the store's epoch, and is told of the reset
        assert [a.seq for a in replay.alerts] == [1, 2, 3, 4, 5, 6]
        assert (replay.last_seq, replay.epoch, replay.reset) == (6, store.epoch, True)
        # and the next live alert is not swallowed as an already-seen seq
        hub.publish(draft(7))
        message = sub.queue.get_nowait()
        assert message.alert is not None and message.alert.seq == 7 and sub.last_seq < 7
        assert message.epoch == store.epoch
    asyncio.run(scenario())


def test_a_cursor_of_another_epoch_replays_from_the_start(store: Store) -> None:
    for i in range(6):
        store.append(draft(i))
    hub = Hub(store)
    # a tablet that saw seq 3 of another database
    other = hub.replay(since=3, epoch=OTHER_EPOCH)
    assert [a.seq for a in other.alerts] == [1, 2, 3, 4, 5, 6] and other.reset
    # a tablet of this database resumes where it was, without a reset
    same = hub.replay(since=3, epoch=store.epoch)
    assert [a.seq for a in same.alerts] == [4, 5, 6] and not same.reset
    # an old page that sends no epoch resumes too, as long as its seq is not ahead of the log
    assert [a.seq for a in hub.replay(since=6, epoch=None).alerts] == []
    assert not hub.replay(since=6, epoch=None).reset
    assert hub.replay(since=6, epoch=None).last_seq == 6


def test_a_reset_replay_keeps_the_newest_within_the_replay_limit(store: Store) -> None:
    for i in range(6):
        store.append(draft(i))
    hub = Hub(store, replay_limit=4)
    replay = hub.replay(since=91, epoch=OTHER_EPOCH)
    assert [a.seq for a in replay.alerts] == [3, 4, 5, 6] and replay.reset and replay.last_seq == 6
    # and it says how many older ones were left out
    assert replay.missed == 2
    # a caller's own limit is honoured, and never raises the hub's
    assert [a.seq for a in hub.replay(since=0, epoch=None, limit=2).alerts] == [5, 6]
    assert hub.replay(since=0, epoch=None, limit=2).missed == 4
    # nothing is missed when the replay holds everything, or when the terminal is up to date
    assert hub.replay(since=3, epoch=None).missed == 0 and hub.replay(since=6, epoch=None).missed == 0
    assert len(hub.replay(since=0, epoch=None, limit=10**9).alerts) == 4


@pytest.mark.parametrize("since", [-1, 2**63, 2**64, 10**100])
def test_a_since_out_of_range_is_refused_before_the_terminal_is_counted(store: Store, since: int) -> None:
    async def scenario() -> None:
        hub = Hub(store)
        with pytest.raises(BadCursor, match="since"):
            await hub.subscribe("t", since=since)
        assert hub.client_count == 0
    asyncio.run(scenario())
    with pytest.raises(BadCursor):
        Hub(store).replay(since=since, epoch=None)


@pytest.mark.parametrize("epoch", ["", "x" * 65, "ab\ncd", "épock"])
def test_a_malformed_epoch_is_refused(store: Store, epoch: str) -> None:
    with pytest.raises(BadCursor, match="epoch"):
        Hub(store).replay(since=0, epoch=epoch)


def test_a_terminal_whose_replay_fails_is_not_counted(store: Store) -> None:
    # given a store whose alert table is gone (a real failure of the real log)
    store.append(draft(1))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE alerts RENAME TO alerts_gone")

    async def scenario() -> None:
        hub = Hub(store)
        with pytest.raises(Exception, match="alerts"):
            await hub.subscribe("t", since=0)
        # then the terminal that could not be served is not left counted
        assert hub.client_count == 0
    asyncio.run(scenario())


def test_a_connection_that_fails_for_any_reason_is_unregistered(store: Store) -> None:
    async def scenario() -> None:
        hub = Hub(store)
        with pytest.raises(RuntimeError, match="socket broke"):
            async with hub.connection("t", since=0, epoch=None) as (sub, replay):
                assert hub.client_count == 1 and replay.alerts == [] and sub.client == "t"
                raise RuntimeError("socket broke")
        assert hub.client_count == 0

        async def cancelled() -> None:
            async with hub.connection("t", since=0, epoch=None):
                await asyncio.sleep(3600)

        task = asyncio.ensure_future(cancelled())
        while hub.client_count == 0:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert hub.client_count == 0
    asyncio.run(scenario())
