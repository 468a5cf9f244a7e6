"""A staged snapshot's entries are checked once, as they arrive: a photo that fails its sha256 then never reaches the
store, even though the staged entries are read back without checking their photos again. A staged photo is
encrypted once, as the store keeps it, and moved into the store unchanged; a key rotation re-encrypts the stage,
and a stage made under a key that has since changed is never applied."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from edge.store.reencrypt import reencrypt, sample_encrypted
from edge.store.rotation import rotate_key
from edge.store.tables import PersonPhotoRow, PersonRow
from edge.sync.apply import GalleryApplier
from edge.sync.changes import parse_answer
from edge.sync.stage import SnapshotStage, StageKeyChanged
from edge.sync.tables import StagedPersonRow, StagedPhotoRow
from tests.edge.sync.helpers import answer, person_entry
from vault.keys import DataKey
from vision.engines.owner import EnginePool


@pytest.fixture()
def box(make_config: Callable[..., EdgeConfig], engine_pool: EnginePool) -> Iterator[EdgeRuntime]:
    runtime = EdgeRuntime(make_config(), engine=engine_pool)
    yield runtime
    runtime.stop()


def test_a_photo_that_fails_its_sha256_while_staging_is_not_stored_by_the_staged_apply(
        box: EdgeRuntime, photo_bytes: Callable[[str], bytes]) -> None:
    # given a snapshot page whose first person has a good photo and a photo whose bytes do not match its sha256
    obama, biden = photo_bytes("obama.jpg"), photo_bytes("biden.jpg")
    tampered = person_entry("a" * 32, "奥巴马", [obama, biden])
    tampered["photos"][1]["sha256"] = tampered["photos"][0]["sha256"][::-1]
    body = answer(7, [tampered, person_entry("b" * 32, "拜登", [biden])], snapshot=True)
    applier = GalleryApplier(store=box.store, data_dir=box.data_dir, gallery=box.gallery, engine=box.engine,
                             enroller=box.enroller, plates=box.plates)
    # when it is staged and the stage applied
    stage = applier.stage(7)
    page, _ = parse_answer(body)
    stage.add(page, list(body["persons"]))
    applier.apply_staged(stage)
    # then both persons are stored, the first with its good photo only, the second with its photo
    assert box.store.person_photos("a" * 32) == [obama]
    assert box.store.person_photo("b" * 32) == biden
    assert applier.version == 7


def applier_of(box: EdgeRuntime) -> GalleryApplier:
    return GalleryApplier(store=box.store, data_dir=box.data_dir, gallery=box.gallery, engine=box.engine,
                          enroller=box.enroller, plates=box.plates)


def stage_page(applier: GalleryApplier, version: int, persons: list[dict[str, Any]]) -> SnapshotStage:
    stage = applier.stage(version)
    body = answer(version, persons, snapshot=True, more=True)
    page, _ = parse_answer(body)
    stage.add(page, list(body["persons"]))
    return stage


def staged_photos(box: EdgeRuntime) -> dict[tuple[str, int], bytes]:
    with box.store.session() as s:
        return {(r.person_id, r.position): bytes(r.photo) for r in s.scalars(select(StagedPhotoRow))}


def test_a_staged_photo_is_stored_as_the_very_ciphertext_staged_and_opens_with_the_store_key(
        box: EdgeRuntime, photo_bytes: Callable[[str], bytes]) -> None:
    # given a staged page: a person with two photos (a name, a plate), the JPEGs encrypted with the store's key
    obama, obama2 = photo_bytes("obama.jpg"), photo_bytes("obama2.jpg")
    applier = applier_of(box)
    stage = stage_page(applier, 9, [person_entry("a" * 32, "奥巴马", [obama, obama2], plates=["京A12345"])])
    sealed = staged_photos(box)
    assert set(sealed) == {("a" * 32, 0), ("a" * 32, 1)}
    assert [box.store.cipher.decrypt(sealed["a" * 32, i]) for i in (0, 1)] == [obama, obama2]
    with box.store.session() as s:  # the staged entry holds neither photo nor template, and is encrypted
        [entry] = s.scalars(select(StagedPersonRow.entry)).all()
    assert "奥巴马".encode() not in entry and b"photos" not in box.store.cipher.decrypt(entry)
    # when the stage is applied
    applier.apply_staged(stage)
    # then the store holds those very ciphertexts (moved, not decrypted and encrypted again), which open as the photos
    with box.store.session() as s:
        card = s.scalar(select(PersonRow.photo).where(PersonRow.id == "a" * 32))
        extra = s.scalars(select(PersonPhotoRow.photo).where(PersonPhotoRow.person_id == "a" * 32)).all()
    assert card == sealed["a" * 32, 0] and list(extra) == [sealed["a" * 32, 1]]
    assert box.store.person_photos("a" * 32) == [obama, obama2]
    person = box.store.get_person("a" * 32)
    assert person is not None and person.name == "奥巴马"
    assert box.store.plate_owner("京A12345") is not None
    # and the stage is empty
    assert staged_photos(box) == {}


def test_a_key_rotation_in_the_middle_of_a_snapshot_re_encrypts_the_stage_and_the_old_stage_is_not_applied(
        box: EdgeRuntime, photo_bytes: Callable[[str], bytes]) -> None:
    # given a staged page under the store's key
    obama = photo_bytes("obama.jpg")
    applier = applier_of(box)
    stage = stage_page(applier, 9, [person_entry("a" * 32, "奥巴马", [obama])])
    old = box.store.cipher
    # when the store's key is rotated (every encrypted column, in one transaction)
    new = Fernet(Fernet.generate_key())
    reencrypt(box.store, new, meta={})
    # then the staged photo and entry were re-encrypted too: they open with the new key, not the old
    sealed = staged_photos(box)["a" * 32, 0]
    assert new.decrypt(sealed) == obama
    with pytest.raises(InvalidToken):
        old.decrypt(sealed)
    with box.store.session() as s:
        new.decrypt(s.scalars(select(StagedPersonRow.entry)).one())
    # and the stage made under the old key is neither added to nor applied: nothing moves
    page, _ = parse_answer(answer(9, [person_entry("b" * 32, "拜登", [photo_bytes("biden.jpg")])], snapshot=True))
    with pytest.raises(StageKeyChanged):
        stage.add(page, [])
    with pytest.raises(StageKeyChanged):
        applier.apply_staged(stage)
    assert applier.version == 0 and box.store.get_person("a" * 32) is None
    # and the snapshot staged again applies, its photos under the new key
    applier.apply_staged(stage_page(applier, 9, [person_entry("a" * 32, "奥巴马", [obama])]))
    with box.store.session() as s:
        card = s.scalar(select(PersonRow.photo).where(PersonRow.id == "a" * 32))
    assert card is not None and new.decrypt(card) == obama
    assert box.store.person_photos("a" * 32) == [obama] and applier.version == 9


def test_a_stage_left_by_a_crash_is_rotated_with_the_data_folder_and_the_next_snapshot_replaces_it(
        make_config: Callable[..., EdgeConfig], engine_pool: EnginePool, photo_bytes: Callable[[str], bytes]) -> None:
    # given a box stopped with a staged page (a crash in the middle of a snapshot)
    config = make_config()
    obama, biden = photo_bytes("obama.jpg"), photo_bytes("biden.jpg")
    runtime = EdgeRuntime(config, engine=engine_pool)
    stage_page(applier_of(runtime), 9, [person_entry("a" * 32, "奥巴马", [obama])])
    runtime.stop()
    # when the data folder's key is rotated offline
    new = DataKey.generate()
    rotate_key(config.paths.data_dir, branch_id=config.branch.id, clips_dir=config.clips.resolve_dir(
        config.paths.data_dir), new=new)
    # then the box opens with the new key, the staged photo re-encrypted under it (the key check samples it)
    runtime = EdgeRuntime(config, engine=engine_pool)
    try:
        assert runtime.data.key.key_id == new.key_id
        assert runtime.store.cipher.decrypt(staged_photos(runtime)["a" * 32, 0]) == obama
        assert "sync_staged_photos.photo" in dict(sample_encrypted(runtime.store))
        # and the next snapshot's stage replaces what the crash left, and applies
        applier = applier_of(runtime)
        applier.apply_staged(stage_page(applier, 10, [person_entry("b" * 32, "拜登", [biden])]))
        assert runtime.store.get_person("a" * 32) is None and runtime.store.person_photos("b" * 32) == [biden]
        assert staged_photos(runtime) == {}
    finally:
        runtime.stop()
