"""The README's own path, end to end on real photos: the demo's data, then ``smartbranch edge run`` on the
demo config after adding a token. A missing or different key is refused with the reason; the right key
starts; after ``smartbranch keys rotate`` the old key is refused and the new one opens the photos and the
gallery."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
import yaml
from cryptography.fernet import Fernet

from edge.api.auth import new_token
from edge.cli.main import main
from edge.config import hash_token, load_config
from edge.demo.run import VIP_ENROL_PHOTO, VIP_NAME, VIP_TIER, demo_config
from edge.runtime import EdgeRuntime
from edge.store.db import Person
from vault.keys import KEY_ENV, KEY_FILE
from vision.engines.base import FaceEngine
from vision.engines.owner import EnginePool
from vision.types import Image


def write_walk_in(path: Path, image: Image, frames: int = 10) -> Path:
    """A one-second 10 fps video of one real photo (the demo's camera source kind: a file)."""
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (width - width % 2, height - height % 2))
    for _ in range(frames):
        writer.write(image[:height - height % 2, :width - width % 2])
    writer.release()
    return path


def demo_data(tmp_path: Path, photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes],
              engine_pool: EnginePool) -> tuple[Path, Person]:
    """The demo's folder: its config file and its VIP enrolled, the way ``make demo`` made them."""
    workdir = tmp_path / "demo"
    workdir.mkdir()
    video = write_walk_in(workdir / "entrance.mp4", photo("obama3.jpg"))
    config_path = workdir / "smartbranch.yaml"
    config_path.write_text(yaml.safe_dump(demo_config(workdir, video, 0, new_token()), allow_unicode=True,
                                          sort_keys=False), encoding="utf-8")
    runtime = EdgeRuntime(load_config(config_path), engine=engine_pool)
    vip = runtime.enroller.enrol(name=VIP_NAME, tier=VIP_TIER, photo=photo_bytes(VIP_ENROL_PHOTO),
                                 consent="演示：本人同意（示例记录）")
    runtime.stop()
    return config_path, vip


def add_token(config_path: Path) -> None:
    """The README's next step: paste a token made by ``smartbranch token new`` under auth.tokens."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["auth"]["tokens"].append({"name": "lobby-tablet-1", "sha256": hash_token(new_token()),
                                     "roles": ["lobby_manager"]})
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")


def edge_run(config_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["edge", "run", "--config", str(config_path), "--exit-when-done"])
    return code, capsys.readouterr().err


def best_match(runtime: EdgeRuntime, engine: FaceEngine, image: Image) -> str | None:
    best = runtime.gallery.search(engine.embed(image, engine.detect(image)))[0].best
    return None if best is None else best.person_id


def test_demo_data_then_edge_run_refuses_a_wrong_key_and_rotates(
        tmp_path: Path, photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes], engine: FaceEngine,
        engine_pool: EnginePool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # given the demo's data, encrypted under a key from the environment that the user never saw (what
    # `make demo` did), and a token added to the demo config
    demo_key = Fernet.generate_key().decode()
    monkeypatch.setenv(KEY_ENV, demo_key)
    config_path, vip = demo_data(tmp_path, photo, photo_bytes, engine_pool)
    data_dir = load_config(config_path).paths.data_dir
    add_token(config_path)
    db_before = (data_dir / "edge.db").read_bytes()

    # when `edge run` starts without the key, then it refuses, says why (Chinese first, then English), and
    # neither makes a new key nor touches the data
    monkeypatch.delenv(KEY_ENV)
    code, err = edge_run(config_path, capsys)
    assert code == 2
    assert err.index("数据目录错误（key_missing）") < err.index("Data folder error (key_missing)")
    assert KEY_ENV in err and "no key is configured" in err
    assert not (data_dir / KEY_FILE).exists()
    assert (data_dir / "edge.db").read_bytes() == db_before

    # when it starts with another key, then it refuses, naming both keys' ids
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    code, err = edge_run(config_path, capsys)
    assert code == 2 and "key_mismatch" in err and "is not the key the data" in err

    # when it starts with the demo's key, then it runs the camera to the end and exits cleanly
    monkeypatch.setenv(KEY_ENV, demo_key)
    code, err = edge_run(config_path, capsys)
    assert code == 0, err

    # when the key is rotated to a new one (given in a file, since the key is in the environment)
    new_key_file = tmp_path / "new.key"
    new_key_file.write_text(Fernet.generate_key().decode(), encoding="utf-8")
    assert main(["keys", "rotate", "--config", str(config_path), "--new-key-file", str(new_key_file)]) == 0
    out = capsys.readouterr().out
    assert "数据密钥已轮换" in out and str(new_key_file) in out

    # then the old key is refused, and the message says it is the key from before the rotation
    code, err = edge_run(config_path, capsys)
    assert code == 2 and "key_mismatch" in err and "轮换之前的旧密钥" in err

    # and with the new key the photo decrypts and the gallery (kept, not rebuilt) still recognises the VIP
    monkeypatch.setenv(KEY_ENV, new_key_file.read_text(encoding="utf-8"))
    runtime = EdgeRuntime(load_config(config_path), engine=engine_pool)
    try:
        assert runtime.store.person_photo(vip.id) == photo_bytes(VIP_ENROL_PHOTO)
        assert best_match(runtime, engine, photo("obama2.jpg")) == vip.id
        assert not list((data_dir / "gallery").glob("rejected-*"))
    finally:
        runtime.stop()


def test_the_demo_leaves_a_key_file_that_edge_run_uses(
        tmp_path: Path, photo: Callable[[str], Image], photo_bytes: Callable[[str], bytes],
        engine_pool: EnginePool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # given the demo's data made with no key in the environment (the demo no longer makes a throw-away one)
    monkeypatch.delenv(KEY_ENV, raising=False)
    config_path, vip = demo_data(tmp_path, photo, photo_bytes, engine_pool)
    add_token(config_path)
    # when `edge run` starts on it, then it opens the data with the folder's key file
    code, err = edge_run(config_path, capsys)
    assert code == 0, err
    runtime = EdgeRuntime(load_config(config_path), engine=engine_pool)
    try:
        assert runtime.store.person_photo(vip.id) == photo_bytes(VIP_ENROL_PHOTO)
    finally:
        runtime.stop()
