"""A staged snapshot's photos go from the stage into the store by SQL inside the apply's one transaction: they are
never read back into the box's Python, and the rows written are the very rows a one-page apply writes (the first
photo on the person's row, the other distinct photos beside it), for new persons and for persons the box holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from edge.store.tables import PersonPhotoRow, PersonRow
from edge.sync.apply import GalleryApplier
from edge.sync.changes import parse_answer
from tests.edge.sync.helpers import answer, person_entry
from vault.keys import decrypt
from vision.engines.owner import EnginePool


@pytest.fixture()
def box(make_config: Callable[..., EdgeConfig], engine_pool: EnginePool) -> Iterator[EdgeRuntime]:
    runtime = EdgeRuntime(make_config(), engine=engine_pool)
    yield runtime
    runtime.stop()


def applier_of(box: EdgeRuntime) -> GalleryApplier:
    return GalleryApplier(store=box.store, data_dir=box.data_dir, gallery=box.gallery, engine=box.engine,
                          enroller=box.enroller, plates=box.plates)


def stored(box: EdgeRuntime) -> dict[str, tuple[str, str, bytes, list[tuple[str, bytes]]]]:
    """Each person: (name, card photo sha256, card photo, sorted [(sha256, photo)] of the photos beside it)."""
    cipher = box.store.cipher
    with box.store.session() as s:
        extra: dict[str, list[tuple[str, bytes]]] = {}
        for row in s.scalars(select(PersonPhotoRow)):
            assert len(row.id) == 32 and all(c in "0123456789abcdef" for c in row.id)
            extra.setdefault(row.person_id, []).append((row.photo_sha256, decrypt(cipher, row.photo)))
        return {p.id: (p.name, p.photo_sha256, decrypt(cipher, p.photo), sorted(extra.get(p.id, [])))
                for p in s.scalars(select(PersonRow))}


def test_staged_photos_are_not_read_back_into_python_by_the_apply(
        box: EdgeRuntime, photo_bytes: Callable[[str], bytes]) -> None:
    # given a staged page of a person with two photos
    obama, obama2 = photo_bytes("obama.jpg"), photo_bytes("obama2.jpg")
    applier = applier_of(box)
    stage = applier.stage(4)
    body = answer(4, [person_entry("a" * 32, "奥巴马", [obama, obama2])], snapshot=True, more=True)
    page, _ = parse_answer(body)
    stage.add(page, list(body["persons"]))
    # when the apply reads the staged persons
    with box.store.session() as s:
        [person] = list(stage.persons(s))
    # then it gets their photos' order and sha256 only: the ciphertexts stay in the database
    assert [(p.data, p.sealed) for p in person.photos] == [(b"", None), (b"", None)]
    assert [p.sha256 for p in person.photos] == [p.sha256 for p in page.persons["a" * 32].photos]


def test_a_staged_apply_writes_the_same_rows_as_a_one_page_apply_for_new_and_held_persons(
        box: EdgeRuntime, make_config: Callable[..., EdgeConfig], engine_pool: EnginePool,
        photo_bytes: Callable[[str], bytes]) -> None:
    obama, obama2, biden = photo_bytes("obama.jpg"), photo_bytes("obama2.jpg"), photo_bytes("biden.jpg")
    persons = [person_entry("a" * 32, "奥巴马", [obama, obama2, obama, obama2, biden]),  # repeats: stored once
               person_entry("b" * 32, "拜登", [biden, biden])]
    # given one box that applied them as a one-page snapshot
    other = EdgeRuntime(make_config(), engine=engine_pool)
    try:
        applier_of(other).apply(parse_answer(answer(3, persons, snapshot=True))[0])
        expected = stored(other)
    finally:
        other.stop()
    # and this box, which already holds one of them with other photos and another name
    applier = applier_of(box)
    applier.apply(parse_answer(answer(2, [person_entry("a" * 32, "旧名", [biden])], snapshot=True))[0])
    # when it applies them as a staged snapshot of two pages
    stage = applier.stage(3)
    for entry in persons:
        body = answer(3, [entry], snapshot=True, more=True)
        stage.add(parse_answer(body)[0], list(body["persons"]))
    applier.apply_staged(stage)
    # then it holds the very rows the one-page apply wrote
    assert stored(box) == expected
    assert expected["a" * 32][1:3] == (person_entry("a" * 32, "", [obama])["photos"][0]["sha256"], obama)
    assert [sha for sha, _ in expected["a" * 32][3]] == sorted(
        person_entry("a" * 32, "", [p])["photos"][0]["sha256"] for p in (obama2, biden))
    assert expected["b" * 32][3] == []
    assert applier.version == 3
