"""Store integrity: SQLite enforces the foreign keys, so a person's plates and extra photos go with them."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import LargeBinary, select
from sqlalchemy.exc import IntegrityError

import edge.review.tables  # noqa: F401 - registers the review tables on the store's Base
from edge.store.db import Store
from edge.store.reencrypt import encrypted_columns, reencrypt, sample_encrypted
from edge.store.tables import Base, PersonPhotoRow, PersonRow, PlateRow, SnapshotRow
from vault.errors import KeyMaterialError


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "edge.db", branch_id="b", cipher=Fernet(Fernet.generate_key()))
    yield store
    store.engine.dispose()


def test_deleting_a_person_deletes_their_plates_and_photos(store: Store) -> None:
    # Given a person with a plate and an extra photo
    with store.session() as s, s.begin():
        person = store.add_person(s, name="王建国", tier="钻石", role="vip", consent="c", photo=b"p1",
                                  photo_sha256="1" * 64, model_id="m")
        store.add_person_photo(s, person_id=person.id, photo=b"p2", photo_sha256="2" * 64)
    store.add_plate(person_id=person.id, plate="皖A12345", kind="ordinary")
    # When the person row is deleted
    with store.session() as s, s.begin():
        s.delete(s.get(PersonRow, person.id))
    # Then nothing of theirs is left
    with store.session() as s:
        assert s.scalars(select(PlateRow)).all() == []
        assert s.scalars(select(PersonPhotoRow)).all() == []


def test_a_plate_for_nobody_is_refused_by_the_database(store: Store) -> None:
    with pytest.raises(IntegrityError):
        store.add_plate(person_id="no-such-person", plate="皖A12345", kind="ordinary")


def test_every_binary_column_is_declared_encrypted() -> None:
    # given every table on the store's Base (review tables included), then each binary column is declared
    # ENCRYPTED, so that the key check samples it and key rotation re-encrypts it
    binary = {f"{c.table.name}.{c.name}" for t in Base.metadata.sorted_tables for c in t.columns
              if isinstance(c.type, LargeBinary)}
    assert binary and binary == {f"{c.table.name}.{c.name}" for c in encrypted_columns()}


def test_reencrypt_is_all_or_nothing(store: Store) -> None:
    # given two photos and a snapshot, the older snapshot encrypted under some other key
    with store.session() as s, s.begin():
        person = store.add_person(s, name="王建国", tier="钻石", role="vip", consent="c", photo=b"p1",
                                  photo_sha256="1" * 64, model_id="m")
        store.add_person_photo(s, person_id=person.id, photo=b"p2", photo_sha256="2" * 64)
    stray = store.add_snapshot(camera_id="c", jpeg=b"s")
    with store.session() as s, s.begin():
        s.get(SnapshotRow, stray).jpeg = Fernet(Fernet.generate_key()).encrypt(b"s")
    before = sample_encrypted(store)
    old = store.cipher
    # when everything is re-encrypted with a new key, then it fails and nothing changed
    with pytest.raises(KeyMaterialError):
        reencrypt(store, Fernet(Fernet.generate_key()), meta={"key_id": "new"})
    assert sample_encrypted(store) == before and store.cipher is old
    assert store.person_photos(person.id) == [b"p1", b"p2"] and store.meta("key_id") is None
    # and once the stray snapshot is gone, every value moves to the new key in one go
    store.delete_snapshots(datetime.now(UTC) + timedelta(seconds=1))
    new = Fernet(Fernet.generate_key())
    assert reencrypt(store, new, meta={"key_id": "new"}) == 2
    assert store.cipher is new and store.person_photos(person.id) == [b"p1", b"p2"]
    assert store.meta("key_id") == "new"
    assert [new.decrypt(blob) for _, blob in sample_encrypted(store)] == [b"p1", b"p2"]


def test_the_database_files_are_private(store: Store, tmp_path: Path) -> None:
    # given a store that has written (WAL mode), then the database and its -wal and -shm are 0600
    store.set_meta("x", "y")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("edge.db*")}
    assert set(modes) == {"edge.db", "edge.db-wal", "edge.db-shm"} and set(modes.values()) == {0o600}


def test_a_name_stored_before_normalisation_is_shown_clean(store: Store) -> None:
    # given a person whose name and tier were stored with a bidi override and a zero-width space (an old row)
    with store.session() as s, s.begin():
        person = store.add_person(s, name="张\u202e三\u200b", tier="钻\u200d石", role="vip", consent="c",
                                  photo=b"p", photo_sha256="0" * 64, model_id="m")
    # when it is read back, alone or listed
    # then no reader sees the invisible characters
    shown = store.get_person(person.id)
    assert shown is not None and (shown.name, shown.tier) == ("张三", "钻石")
    assert [p.name for p in store.list_persons()] == ["张三"]


def test_an_alert_of_another_branch_cannot_be_acknowledged_here(tmp_path: Path) -> None:
    from tests.alerts.test_hub import draft

    # given two branches' stores on one database file, each with an alert
    here = Store(tmp_path / "edge.db", branch_id="b1", cipher=Fernet(Fernet.generate_key()))
    there = Store(tmp_path / "edge.db", branch_id="b2", cipher=Fernet(Fernet.generate_key()))
    try:
        other = there.append(draft(1, branch="b2"))
        own = here.append(draft(2, branch="b1"))
        # when this branch acknowledges both
        # then only its own alert is acknowledged
        assert here.ack(other.id, "lobby-1") is None
        acked = here.ack(own.id, "lobby-1")
        assert acked is not None and acked.acked_by == "lobby-1"
        untouched = there.get_alert(other.id)
        assert untouched is not None and untouched.acked_at is None
    finally:
        here.engine.dispose()
        there.engine.dispose()
