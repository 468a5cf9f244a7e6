"""The data folder at start-up, on real photos: a wrong or missing key, a deleted database, a database of
another epoch and a tampered gallery id map are refused or repaired, never silently accepted."""

from __future__ import annotations

import json
import logging
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from edge.config import EdgeConfig
from edge.errors import DataFolderError
from edge.runtime import EdgeRuntime
from edge.store.db import Person
from vault.keys import KEY_ENV, KEY_FILE
from vision.engines.base import FaceEngine
from vision.types import Image


@pytest.fixture()
def enrolled(make_config: Callable[..., EdgeConfig], start: Callable[[EdgeConfig], EdgeRuntime],
             photo_bytes: Callable[[str], bytes]) -> tuple[EdgeConfig, Person, Person]:
    """Obama and Biden enrolled from real photos into a fresh data folder; the runtime is stopped again."""
    config = make_config()
    runtime = start(config)
    obama = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama.jpg"), consent="c")
    biden = runtime.enroller.enrol(name="拜登", tier="金卡", photo=photo_bytes("biden.jpg"), consent="c")
    runtime.stop()
    return config, obama, biden


def folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def best_match(runtime: EdgeRuntime, engine: FaceEngine, image: Image) -> str | None:
    best = runtime.gallery.search(engine.embed(image, engine.detect(image)))[0].best
    return None if best is None else best.person_id


def test_a_fresh_folder_gets_a_key_file_and_private_modes(make_config: Callable[..., EdgeConfig],
                                                          start: Callable[[EdgeConfig], EdgeRuntime],
                                                          photo_bytes: Callable[[str], bytes]) -> None:
    # given an empty data folder and no key in the environment
    config = make_config()
    # when the box starts and enrols a person (database, WAL, gallery files all written)
    runtime = start(config)
    runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama.jpg"), consent="c")
    # then a key file was made for it, and the folder and everything in it is private to the service user
    data = config.paths.data_dir
    assert (data / KEY_FILE).is_file()
    modes = {str(p.relative_to(data)): stat.S_IMODE(p.stat().st_mode) for p in [data, *data.rglob("*")]}
    names = set(modes)
    assert {".", KEY_FILE, "edge.db", "edge.db-wal", "edge.db-shm", "gallery"} <= names | {"."}
    assert any(n.startswith("gallery/") and n.endswith(".json") for n in names)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    wrong = {n: oct(m) for n, m in modes.items()
             if m != (0o700 if (data / n).is_dir() else 0o600) and not n.startswith("clips")}
    assert wrong == {}


@pytest.mark.parametrize("how", ["other-key-in-env", "key-file-deleted", "env-key-unset"])
def test_a_missing_or_wrong_key_refuses_to_start(how: str, make_config: Callable[..., EdgeConfig],
                                                 start: Callable[[EdgeConfig], EdgeRuntime],
                                                 photo_bytes: Callable[[str], bytes],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # given a person enrolled under a key (from the key file, or from the environment)
    config = make_config()
    env_key = Fernet.generate_key().decode()
    if how == "env-key-unset":
        monkeypatch.setenv(KEY_ENV, env_key)
    runtime = start(config)
    person = runtime.enroller.enrol(name="奥巴马", tier="钻石", photo=photo_bytes("obama.jpg"), consent="c")
    runtime.stop()
    data = config.paths.data_dir
    # when the box starts with another key, or none
    if how == "other-key-in-env":
        monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    elif how == "key-file-deleted":
        (data / KEY_FILE).unlink()
    else:
        monkeypatch.delenv(KEY_ENV)
    before = folder_files(data)
    with pytest.raises(DataFolderError) as info:
        start(config)
    # then it refuses, says why in both languages, and changes nothing (no new key is made)
    expected = "key_mismatch" if how == "other-key-in-env" else "key_missing"
    assert info.value.code == expected
    assert KEY_ENV in info.value.en and KEY_ENV in info.value.zh
    assert "密钥" in info.value.zh
    assert folder_files(data) == before
    # and with the right key back it starts and the stored photo decrypts
    if how == "other-key-in-env":
        monkeypatch.delenv(KEY_ENV)
    elif how == "key-file-deleted":
        return  # the key is gone for good: only a backup of it helps, which the message says
    else:
        monkeypatch.setenv(KEY_ENV, env_key)
    again = start(config)
    assert again.store.person_photo(person.id) == photo_bytes("obama.jpg")


@pytest.mark.parametrize(("remains", "named"), [
    ("gallery", "gallery"), ("clips", "clips"), ("wal", "edge.db-wal")])
def test_a_deleted_database_is_refused_and_the_rest_kept(remains: str, named: str,
                                                         enrolled: tuple[EdgeConfig, Person, Person],
                                                         start: Callable[[EdgeConfig], EdgeRuntime]) -> None:
    # given a data folder whose database was deleted, while the gallery files, a clip or the WAL remain
    config, _, _ = enrolled
    data = config.paths.data_dir
    for name in ("edge.db", "edge.db-wal", "edge.db-shm"):
        (data / name).unlink(missing_ok=True)
    if remains != "gallery":
        shutil.rmtree(data / "gallery")
    if remains == "clips":
        clip = config.clips.resolve_dir(data) / "counter-1" / "2026-01-05" / "c1.mp4"
        clip.parent.mkdir(parents=True)
        clip.write_bytes(b"a clip")
    if remains == "wal":
        (data / "edge.db-wal").write_bytes(b"wal frames")
    before = folder_files(data)
    # when the box starts
    with pytest.raises(DataFolderError) as info:
        start(config)
    # then it refuses, naming what is missing and what is present, and writes nothing (no empty gallery)
    assert info.value.code == "db_missing"
    assert "edge.db is missing" in info.value.en and named in info.value.en
    assert "edge.db" in info.value.zh and "恢复" in info.value.zh
    assert folder_files(data) == before


def test_a_database_of_another_epoch_is_refused(enrolled: tuple[EdgeConfig, Person, Person],
                                                make_config: Callable[..., EdgeConfig],
                                                start: Callable[[EdgeConfig], EdgeRuntime], tmp_path: Path) -> None:
    # given the database of another (empty) data folder under the same key, copied over this one's
    config, _, _ = enrolled
    data = config.paths.data_dir
    other = config.model_copy(update={"paths": config.paths.model_copy(update={"data_dir": tmp_path / "other"})})
    (tmp_path / "other").mkdir()
    shutil.copy(data / KEY_FILE, tmp_path / "other" / KEY_FILE)
    start(other).stop()
    for name in ("edge.db-wal", "edge.db-shm"):
        (data / name).unlink(missing_ok=True)
    shutil.copy(tmp_path / "other" / "edge.db", data / "edge.db")
    gallery_before = folder_files(data / "gallery")
    # when the box starts
    with pytest.raises(DataFolderError) as info:
        start(config)
    # then it refuses: the gallery was written under another database's epoch; the gallery is kept
    assert info.value.code == "epoch_mismatch"
    assert folder_files(data / "gallery") == gallery_before


def test_a_tampered_gallery_id_map_is_not_trusted(enrolled: tuple[EdgeConfig, Person, Person],
                                                  start: Callable[[EdgeConfig], EdgeRuntime], engine: FaceEngine,
                                                  photo: Callable[[str], Image],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    # given Obama and Biden enrolled, and their owners swapped in the gallery's id map
    config, obama, biden = enrolled
    [ids_path] = (config.paths.data_dir / "gallery").glob("*.ids.json")
    meta = json.loads(ids_path.read_text(encoding="utf-8"))
    swap = {obama.id: biden.id, biden.id: obama.id}
    meta["owner"] = {k: swap[v] for k, v in meta["owner"].items()}
    ids_path.write_text(json.dumps(meta), encoding="utf-8")
    # when the box starts
    with caplog.at_level(logging.ERROR):
        runtime = start(config)
    # then the swapped map is not used: Obama in another photo is still Obama, and Biden is Biden
    assert best_match(runtime, engine, photo("obama2.jpg")) == obama.id
    assert best_match(runtime, engine, photo("biden.jpg")) == biden.id
    # and the refusal is loud: an error is logged and the rejected files are kept aside for inspection
    assert any("authentic" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert list((config.paths.data_dir / "gallery").glob("rejected-*/*.ids.json"))
