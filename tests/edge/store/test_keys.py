"""Key rotation on real photos: every encrypted value, the gallery's MAC and the clips move to the new key,
all or nothing; a crash before the commit leaves the old key working, a crash after it the new one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from edge.config import EdgeConfig
from edge.errors import ClipFileError, DataFolderError
from edge.runtime import EdgeRuntime
from edge.store.datadir import open_data_folder
from edge.store.db import Person
from edge.store.rotation import commit_rotation, prepare_rotation, rotate_key
from edge.store.tables import SnapshotRow
from vault.clip_file import CLIP_KEY_PURPOSE, ClipReader, encrypt_bytes
from vault.errors import KeyMaterialError
from vault.keys import KEY_ENV, KEY_FILE, DataKey
from vision.engines.base import FaceEngine
from vision.types import Image

CLIP_PLAIN = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 700  # several 64 KiB chunks
SNAPSHOT = b"\xff\xd8 a customer crop \xff\xd9"


class Folder:
    """A data folder with Obama enrolled from two real photos, an alert snapshot and one encrypted clip."""

    def __init__(self, config: EdgeConfig, person: Person, clip: Path) -> None:
        self.config = config
        self.person = person
        self.clip = clip

    @property
    def data_dir(self) -> Path:
        return self.config.paths.data_dir

    @property
    def clips_dir(self) -> Path:
        return self.config.clips.resolve_dir(self.data_dir)

    def key(self) -> DataKey:
        return DataKey.from_text((self.data_dir / KEY_FILE).read_bytes(), "test")

    def rotate(self, new: DataKey) -> None:
        rotate_key(self.data_dir, branch_id=self.config.branch.id, clips_dir=self.clips_dir, new=new)

    def staged_files(self) -> list[Path]:
        return [p for p in self.data_dir.rglob("*") if ".rekey" in p.name]


@pytest.fixture()
def folder(make_config: Callable[..., EdgeConfig], start: Callable[[EdgeConfig], EdgeRuntime],
           photo_bytes: Callable[[str], bytes]) -> Folder:
    config = make_config()
    runtime = start(config)
    obama = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama.jpg"), consent="c")
    runtime.enroller.add_photo(person_id=obama.id, photo=photo_bytes("obama2.jpg"))
    runtime.store.add_snapshot(camera_id="counter-1", jpeg=SNAPSHOT)
    clip = config.clips.resolve_dir(config.paths.data_dir) / "counter-1" / "2026-01-05" / "c1.mp4"
    clip.parent.mkdir(parents=True)
    encrypt_bytes(CLIP_PLAIN, clip, runtime.data.key.derive(CLIP_KEY_PURPOSE))
    runtime.stop()
    return Folder(config, obama, clip)


def read_clip(path: Path, key: DataKey) -> bytes:
    with ClipReader(path, key.derive(CLIP_KEY_PURPOSE)) as reader:
        return reader.read()


def assert_opens_with(folder: Folder, key: DataKey, runtime: EdgeRuntime, engine: FaceEngine,
                      photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes]) -> None:
    """Everything the key protects reads back: photos, snapshot, clip, and the gallery as saved."""
    assert runtime.data.key.key_id == key.key_id
    assert runtime.store.person_photos(folder.person.id) == [photo_bytes("obama.jpg"), photo_bytes("obama2.jpg")]
    with runtime.store.session() as s:
        [snapshot_id] = s.scalars(select(SnapshotRow.id)).all()
    assert runtime.store.snapshot(snapshot_id) == SNAPSHOT
    assert read_clip(folder.clip, key) == CLIP_PLAIN
    probe = photo("obama3.jpg")
    best = runtime.gallery.search(engine.embed(probe, engine.detect(probe)))[0].best
    assert best is not None and best.person_id == folder.person.id
    assert not list((folder.data_dir / "gallery").glob("rejected-*"))


def test_rotation_moves_every_protected_thing_to_the_new_key(
        folder: Folder, start: Callable[[EdgeConfig], EdgeRuntime], engine: FaceEngine,
        photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # given the folder's key (in data.key) and a new key
    old, new = folder.key(), DataKey.generate()
    # when the key is rotated
    folder.rotate(new)
    # then data.key holds the new key, and nothing is left staged
    assert folder.key().key_id == new.key_id
    assert folder.staged_files() == []
    # and the clip opens with the new key only
    with pytest.raises(ClipFileError):
        read_clip(folder.clip, old)
    # and the old key is refused (named as the key from before the rotation)
    monkeypatch.setenv(KEY_ENV, old.encoded.decode())
    with pytest.raises(DataFolderError) as info:
        start(folder.config)
    assert info.value.code == "key_mismatch" and "before the last key rotation" in info.value.en
    # and the new key opens all of it, the gallery as it was saved (not rebuilt)
    monkeypatch.delenv(KEY_ENV)
    with caplog.at_level(logging.WARNING):
        runtime = start(folder.config)
    assert "rebuilt" not in caplog.text
    assert_opens_with(folder, new, runtime, engine, photo, photo_bytes)


def test_a_rotation_interrupted_before_its_commit_leaves_the_old_key(
        folder: Folder, start: Callable[[EdgeConfig], EdgeRuntime], engine: FaceEngine,
        photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes]) -> None:
    # given a rotation that wrote its new files and then stopped (a crash before the database commit)
    old = folder.key()
    opened = open_data_folder(folder.data_dir, branch_id=folder.config.branch.id, clips_dir=folder.clips_dir,
                              exclusive=True)
    prepare_rotation(opened, DataKey.generate())
    opened.close()
    assert folder.staged_files()
    # when the box starts, then the old key opens everything and the leftovers are gone
    runtime = start(folder.config)
    assert folder.staged_files() == []
    assert_opens_with(folder, old, runtime, engine, photo, photo_bytes)


def test_a_rotation_committed_but_not_switched_is_finished_at_the_next_start(
        folder: Folder, start: Callable[[EdgeConfig], EdgeRuntime], engine: FaceEngine,
        photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes]) -> None:
    # given a rotation whose database commit happened, and then a crash before any file was switched
    new = DataKey.generate()
    opened = open_data_folder(folder.data_dir, branch_id=folder.config.branch.id, clips_dir=folder.clips_dir,
                              exclusive=True)
    commit_rotation(opened, prepare_rotation(opened, new))
    opened.close()
    assert folder.key().key_id != new.key_id
    # when the box starts, then it finishes the switch: the new key is in data.key and opens everything
    runtime = start(folder.config)
    assert folder.key().key_id == new.key_id and folder.staged_files() == []
    assert_opens_with(folder, new, runtime, engine, photo, photo_bytes)


def test_a_value_that_does_not_decrypt_stops_the_rotation_with_nothing_changed(
        folder: Folder, start: Callable[[EdgeConfig], EdgeRuntime], engine: FaceEngine,
        photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes]) -> None:
    # given a folder in which one older snapshot was encrypted under some other key
    opened = open_data_folder(folder.data_dir, branch_id=folder.config.branch.id, clips_dir=folder.clips_dir)
    stray = opened.store.add_snapshot(camera_id="counter-1", jpeg=b"x")
    opened.store.add_snapshot(camera_id="counter-1", jpeg=SNAPSHOT)  # the newest one stays readable
    with opened.store.session() as s, s.begin():
        s.execute(update(SnapshotRow).where(SnapshotRow.id == stray)
                  .values(jpeg=Fernet(Fernet.generate_key()).encrypt(b"x")))
    opened.close()
    old = folder.key()
    # when the key is rotated, then it fails and the database, the files and the key are as before
    with pytest.raises(KeyMaterialError):
        folder.rotate(DataKey.generate())
    assert folder.key().key_id == old.key_id and folder.staged_files() == []
    assert read_clip(folder.clip, old) == CLIP_PLAIN
    runtime = start(folder.config)
    assert runtime.store.person_photos(folder.person.id) == [photo_bytes("obama.jpg"), photo_bytes("obama2.jpg")]


def test_rotation_refuses_while_the_service_runs(folder: Folder, start: Callable[[EdgeConfig], EdgeRuntime]) -> None:
    # given the service running on the folder
    runtime = start(folder.config)
    # when the key is rotated, then it refuses and changes nothing
    with pytest.raises(DataFolderError) as info:
        folder.rotate(DataKey.generate())
    assert info.value.code == "folder_busy" and "停止" in info.value.zh
    assert folder.staged_files() == []
    # and once the service has stopped, the rotation goes through
    runtime.stop()
    new = DataKey.generate()
    folder.rotate(new)
    assert folder.key().key_id == new.key_id


def test_rotate_command_needs_a_new_key_file_when_the_key_is_in_the_environment(
        make_config: Callable[..., EdgeConfig], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli.main import main

    make_config()
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    code = main(["keys", "rotate", "--config", str(tmp_path / "smartbranch.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "new_key_needed" in err and "--new-key-file" in err
