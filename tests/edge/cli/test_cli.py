"""The smartbranch command line, run as a user would."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from edge.cli.main import main
from edge.terminal import print_terminal_link
from models.packs import resolve_pack
from tests.edge.conftest import IT_TOKEN, config_dict


def write_config(tmp_path: Path, **overrides: Any) -> Path:
    path = tmp_path / "smartbranch.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path / "data", **overrides), allow_unicode=True), encoding="utf-8")
    return path


def corrupt_pack(tmp_path: Path) -> Path:
    pack = resolve_pack("dlib_resnet_v1")
    models_dir = tmp_path / "models"
    target = models_dir / "dlib_resnet_v1"
    target.mkdir(parents=True)
    for name in pack.manifest.files:
        shutil.copy(pack.folder / name, target / name)
    blob = bytearray((target / "dlib_face_recognition_resnet_model_v1.dat").read_bytes())
    blob[1000] ^= 0xFF
    (target / "dlib_face_recognition_resnet_model_v1.dat").write_bytes(bytes(blob))
    return models_dir


@pytest.mark.parametrize(("lang", "header"), [("zh", "模型包"), ("en", "pack")])
def test_models_list_shows_pack_and_licence(lang: str, header: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lang", lang, "models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(header)
    assert "dlib_resnet_v1" in out and "CC0" in out and " ok" in out


def test_models_list_reports_a_corrupt_pack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models_dir = corrupt_pack(tmp_path)
    assert main(["models", "list", "--models-dir", str(models_dir)]) == 0
    out = capsys.readouterr().out
    assert "dlib_face_recognition_resnet_model_v1.dat" in out and "sha256 mismatch" in out


def test_corrupt_model_stops_start_up_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given a config whose model folder holds a corrupted descriptor file
    models_dir = corrupt_pack(tmp_path)
    config = write_config(tmp_path, face={"engine": {"type": "dlib", "models_dir": str(models_dir)}})
    # when the edge starts
    code = main(["edge", "run", "--config", str(config)])
    # then it stops with a clear error naming the file and the folder
    err = capsys.readouterr().err
    assert code == 3
    assert "模型文件错误" in err
    assert "dlib_face_recognition_resnet_model_v1.dat" in err and str(models_dir) in err


@pytest.mark.parametrize(("content", "needle"), [
    ("branch: {id: b}\nbogus: 1\n", "bogus"),
    ("branch: {id: b}\ncameras: [{id: c, role: entrance, source: {url: 'ftp://x/y'}}]\n", "ftp"),
    ("branch: [unclosed\n", "YAML"),
])
def test_bad_config_is_a_clear_error(content: str, needle: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    assert main(["edge", "run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "配置错误" in err and needle in err


@pytest.mark.parametrize(("content", "needle"), [
    ("branch: {id: b}\ncameras: [{id: c, role: entrance, source: {url: 'rtsp://admin:S3cretPass@'}}]\n",
     "rtsp://***@"),
    ("branch: {id: b}\ncameras: [{id: c, role: entrance, source: {url: 'ftp://admin:S3cretPass@nas/v'}}]\n",
     "ftp://***@nas/v"),
    ("branch: {id: b}\ncameras:\n  - {id: c, role: entrance, source: {url: rtsp://admin:S3cretPass@cam/x: y}}\n",
     "YAML"),
])
def test_a_refused_config_does_not_repeat_camera_credentials(content: str, needle: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    assert main(["edge", "run", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert needle in captured.err
    assert "S3cretPass" not in captured.err + captured.out


def test_enroll_cli_good_and_bad(tmp_path: Path, photos_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    ok = main(["enroll", "--config", str(config), "--name", "赵六", "--tier", "金卡",
               "--photo", str(photos_dir / "obama.jpg"), "--consent", "书面同意 2026-11-28"])
    assert ok == 0
    assert "已登记：赵六" in capsys.readouterr().out
    flat = tmp_path / "flat.jpg"
    cv2.imwrite(str(flat), np.full((300, 300, 3), 128, np.uint8))
    bad = main(["--lang", "en", "enroll", "--config", str(config), "--name", "x", "--tier", "金卡",
                "--photo", str(flat), "--consent", "c"])
    assert bad == 2
    assert "no face" in capsys.readouterr().err


@pytest.mark.parametrize(("lang", "photo", "code", "needle"), [
    ("zh", "obama2.jpg", 0, "共 2 张"),
    ("en", "obama2.jpg", 0, "2 photos; the recognition template is now their mean"),
    ("en", "biden.jpg", 2, "(not_same_person)"),
    ("zh", "missing.jpg", 2, "登记失败"),
])
def test_add_photo_cli(lang: str, photo: str, code: int, needle: str, tmp_path: Path, photos_dir: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    # given Obama enrolled from one photo
    config = write_config(tmp_path)
    assert main(["--lang", "en", "enroll", "--config", str(config), "--name", "Obama", "--tier", "金卡",
                 "--photo", str(photos_dir / "obama.jpg"), "--consent", "c"]) == 0
    person_id = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    # when another photo is added for him
    result = main(["--lang", lang, "add-photo", "--config", str(config), "--person", person_id,
                   "--photo", str(photos_dir / photo)])
    # then it is stored or refused, with a message in the chosen language
    out = capsys.readouterr()
    assert result == code
    assert needle in (out.out if code == 0 else out.err)


def test_token_new_prints_a_hash_not_the_token_in_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "new", "--name", "tablet-1", "--roles", "lobby_manager"]) == 0
    out = capsys.readouterr().out
    token = out.splitlines()[0].split("：")[-1].strip()
    entry = yaml.safe_load(out.split("\n", 2)[2])[0]
    assert entry["name"] == "tablet-1" and entry["roles"] == ["lobby_manager"]
    assert token not in yaml.safe_dump(entry)
    import hashlib
    assert entry["sha256"] == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.slow
def test_edge_run_survives_a_dead_camera_and_serves_health(tmp_path: Path) -> None:
    # given a config with one camera on a port where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, cameras=[{"id": "door", "role": "entrance",
                                              "source": {"url": "rtsp://admin:S3cretPass@127.0.0.1:9/live"}}],
                          server={"host": "127.0.0.1", "port": port})
    # when the service runs
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli.main", "edge", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import time

        import httpx

        deadline = time.monotonic() + 60
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2,
                                   headers={"Authorization": f"Bearer {IT_TOKEN}"}).json()
                if health["cameras"][0]["reconnects"] >= 2:
                    break
            except (httpx.HTTPError, KeyError, IndexError):
                pass
            time.sleep(0.3)
        # then it keeps serving, reports the camera unhealthy with the reason, and keeps retrying
        assert health["status"] == "degraded"
        camera = health["cameras"][0]
        assert camera["id"] == "door" and camera["healthy"] is False and camera["state"] == "reconnecting"
        assert camera["reconnects"] >= 2 and "rtsp://***@127.0.0.1:9/live" in camera["error"]
        anonymous = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
        assert anonymous == {"status": "degraded"}
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert 'smartbranch_camera_up{camera="door"} 0.0' in metrics
        assert proc.poll() is None
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    # and the console (its messages and its log) names the camera without the credentials
    assert "摄像头 door 异常" in out and "rtsp://***@127.0.0.1:9/live" in out
    assert "S3cretPass" not in out + str(health) + metrics
    # and the terminal link it prints carries no token, and the line under it does not claim one
    assert f"终端页面：http://127.0.0.1:{port}/terminal\n" in out
    assert "链接内含访问令牌" not in out and "?token=<大堂经理令牌>" in out


@pytest.mark.parametrize(("lang", "token", "link", "hint", "never"), [
    ("zh", None, "终端页面：http://10.0.0.5:8080/terminal\n", "?token=<大堂经理令牌>", "链接内含访问令牌"),
    ("en", None, "Terminal page: http://10.0.0.5:8080/terminal\n", "?token=<lobby manager token>", "carries"),
    ("zh", "t0k", "终端页面：http://10.0.0.5:8080/terminal?token=t0k\n", "链接内含访问令牌", "<大堂经理令牌>"),
    ("en", "a b", "Terminal page: http://10.0.0.5:8080/terminal?token=a%20b\n", "it carries the access token",
     "<lobby manager token>"),
])
def test_the_terminal_link_says_whether_it_carries_a_token(lang: str, token: str | None, link: str, hint: str,
                                                           never: str, capsys: pytest.CaptureFixture[str]) -> None:
    # when the terminal link is printed with or without a token the command knows in plain
    print_terminal_link(lang, "10.0.0.5", 8080, token)
    out = capsys.readouterr().out
    # then the hint under it matches the link
    assert out.startswith(link) and hint in out and never not in out




def test_the_cli_redacts_credentials_in_every_log_record(caplog: pytest.LogCaptureFixture,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # given the logging the CLI sets up for any command
    before = logging.getLogRecordFactory()
    try:
        assert main(["token", "new", "--name", "it-1", "--roles", "branch_it"]) == 0
        capsys.readouterr()
        # when a library logs a camera URL with credentials, as text and in an exception
        log = logging.getLogger("cv2.videoio")
        try:
            raise OSError("open rtsp://admin:S3cretPass@10.0.0.7/live failed")
        except OSError:
            log.exception("capture of %s failed", "rtsp://admin:S3cretPass@10.0.0.7/live")
    finally:
        logging.setLogRecordFactory(before)
    # then the record says what failed, without the password
    assert "capture of rtsp://***@10.0.0.7/live failed" in caplog.text
    assert "OSError: open rtsp://***@10.0.0.7/live failed" in caplog.text
    assert "S3cretPass" not in caplog.text
