"""Store integrity: SQLite enforces the foreign keys, so a person's plates and extra photos go with them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from edge.store import PersonPhotoRow, PersonRow, PlateRow, Store


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
