"""Model packs: the builtin manifest, locating a pack, sha256 verification and clear errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from models.errors import ModelPackError, PackFileError, PackNotFoundError
from models.manifest import PackManifest, builtin_manifests, parse_manifest, sha256_file
from models.packs import candidate_folders, list_packs, resolve_pack
from vision.engines.base import DlibEngineConfig
from vision.engines.registry import build_engine
from vision.types import Image

PACK = "dlib_resnet_v1"
RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS = "shape_predictor_5_face_landmarks.dat"


@pytest.fixture(scope="module")
def installed_folder() -> Path:
    return resolve_pack(PACK).folder


@pytest.fixture()
def models_dir(tmp_path: Path, installed_folder: Path) -> Path:
    """A models dir holding a verified copy of the dlib pack."""
    root = tmp_path / "models"
    pack = root / PACK
    pack.mkdir(parents=True)
    for name in builtin_manifests()[PACK].files:
        shutil.copyfile(installed_folder / name, pack / name)
    return root


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_builtin_manifest_names_the_dlib_pack_and_its_cc0_licence() -> None:
    # given the manifests shipped in the package, when loaded
    manifests = builtin_manifests()
    # then the dlib pack is there with two files, a CC0 licence and commercial use allowed
    assert PACK in manifests
    manifest = manifests[PACK]
    assert manifest.name == PACK
    assert "CC0" in manifest.licence and manifest.commercial_use is True
    assert set(manifest.files) == {RECOGNITION, LANDMARKS}
    assert manifest.file_for_role("recognition") == RECOGNITION
    assert manifest.file_for_role("landmarks_5") == LANDMARKS


def test_unknown_role_is_an_error() -> None:
    # given the dlib manifest, when asked for a role it lacks, then ModelPackError names the role and pack
    with pytest.raises(ModelPackError, match="'dlib_resnet_v1' has no file with role 'detector'"):
        builtin_manifests()[PACK].file_for_role("detector")


def test_resolve_finds_the_pack_in_the_installed_package(installed_folder: Path) -> None:
    # given no models dir, when the pack is resolved
    pack = resolve_pack(PACK)
    # then it is the face_recognition_models package folder, verified, with paths per role
    assert "face_recognition_models" in str(pack.folder)
    assert pack.path_for("recognition") == installed_folder / RECOGNITION
    assert pack.path_for("recognition").is_file()
    assert sha256_file(pack.path_for("landmarks_5")) == pack.manifest.files[LANDMARKS].sha256


def test_resolve_prefers_the_models_dir(models_dir: Path) -> None:
    # given a models dir holding a good copy, when resolved with it, then that folder is used
    pack = resolve_pack(PACK, models_dir)
    assert pack.folder == models_dir / PACK
    assert candidate_folders(pack.manifest, models_dir)[0] == models_dir / PACK


@pytest.mark.parametrize(("name", "offset"), [(RECOGNITION, 0), (LANDMARKS, -1), (RECOGNITION, 1_000_000)])
def test_a_corrupt_file_is_named_with_sha256_and_folder(models_dir: Path, name: str, offset: int) -> None:
    # given a models dir where one byte of one file is flipped
    _flip_byte(models_dir / PACK / name, offset)
    # when resolved
    with pytest.raises(PackFileError) as info:
        resolve_pack(PACK, models_dir)
    # then the error names the file, the check and the folder (and does not fall back silently)
    message = str(info.value)
    assert name in message and "sha256" in message and str(models_dir / PACK) in message
    assert info.value.file == name and info.value.folder == models_dir / PACK


@pytest.mark.parametrize("name", [RECOGNITION, LANDMARKS])
def test_a_missing_file_is_named(models_dir: Path, name: str) -> None:
    # given a models dir with one file deleted
    (models_dir / PACK / name).unlink()
    # when resolved, then the error says which file is missing and where
    with pytest.raises(PackFileError, match="missing") as info:
        resolve_pack(PACK, models_dir)
    assert name in str(info.value) and str(models_dir / PACK) in str(info.value)


def test_an_empty_pack_folder_is_reported_not_skipped(tmp_path: Path) -> None:
    # given a models dir with an empty pack folder (an unfinished copy)
    (tmp_path / PACK).mkdir()
    # when resolved, then the first file is reported missing there
    with pytest.raises(PackFileError, match="missing"):
        resolve_pack(PACK, tmp_path)


@pytest.mark.parametrize("name", ["", "nope", "DLIB_RESNET_V1"])
def test_unknown_pack_name(name: str) -> None:
    # given a name no manifest declares, when resolved, then PackNotFoundError
    with pytest.raises(PackNotFoundError) as info:
        resolve_pack(name)
    assert info.value.pack == name and info.value.searched == []
    assert "(nowhere)" in str(info.value)


def test_a_pack_found_nowhere_lists_the_folders_searched(tmp_path: Path) -> None:
    # given a manifest whose package is not installed and a models dir without the pack
    manifest = builtin_manifests()[PACK].model_copy(
        update={"locate": builtin_manifests()[PACK].locate.model_copy(update={"python_package": "not_installed_x"})})
    # when resolved, then the error lists the models-dir folder it looked in
    with pytest.raises(PackNotFoundError) as info:
        resolve_pack(PACK, tmp_path, manifests={PACK: manifest})
    assert info.value.searched == [tmp_path / PACK]
    assert str(tmp_path / PACK) in str(info.value)


def test_models_dir_without_the_pack_falls_back_to_the_installed_package(tmp_path: Path,
                                                                         installed_folder: Path) -> None:
    # given a models dir that exists but holds no dlib pack folder
    (tmp_path / "other_pack").mkdir()
    # when resolved with it, then the installed package is used
    assert resolve_pack(PACK, tmp_path).folder == installed_folder
    assert resolve_pack(PACK, tmp_path / "absent").folder == installed_folder


def test_list_packs_reports_ok_and_the_licence(tmp_path: Path, models_dir: Path) -> None:
    # given the installed package and a models dir with a corrupt copy
    # when packs are listed
    [ok] = [p for p in list_packs() if p.name == PACK]
    _flip_byte(models_dir / PACK / LANDMARKS, 10)
    [bad] = [p for p in list_packs(models_dir) if p.name == PACK]
    # then the installed pack is "ok" with its folder and licence, the corrupt one explains why
    assert (ok.name, ok.status, ok.commercial_use) == (PACK, "ok", True)
    assert ok.folder is not None and "CC0" in ok.licence
    assert bad.folder is None and LANDMARKS in bad.status and "sha256" in bad.status


def _manifest_dict() -> dict[str, Any]:
    return {
        "name": "p", "description": "d", "licence": "MIT", "commercial_use": True,
        "locate": {"subdir": ""},
        "files": {"a.onnx": {"sha256": "0" * 64, "role": "recognition"}},
    }


def _without(key: str) -> str:
    data = _manifest_dict()
    del data[key]
    return json.dumps(data)


def _with(**changes: Any) -> str:
    return json.dumps({**_manifest_dict(), **changes})


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "invalid"),
        ("{not json", "invalid"),
        ("[]", "invalid"),
        ("null", "invalid"),
        (_without("name"), "name"),
        (_without("licence"), "licence"),
        (_without("files"), "files"),
        (_with(files={}), "files"),
        (_with(files={"a.onnx": {"sha256": "XYZ", "role": "r"}}), "sha256"),
        (_with(files={"a.onnx": {"role": "r"}}), "sha256"),
        (_with(extra_key=1), "extra_key"),
    ],
    ids=["empty", "bad-json", "list", "null", "no-name", "no-licence", "no-files", "zero-files", "bad-sha",
         "no-sha", "unknown-key"],
)
def test_parse_manifest_rejects_bad_text(text: str, field: str) -> None:
    # given malformed manifest text, when parsed, then ModelPackError names the source and the field
    with pytest.raises(ModelPackError, match=r"bad\.json") as info:
        parse_manifest(text, source="bad.json")
    assert field in str(info.value)


def test_parse_manifest_accepts_a_minimal_manifest() -> None:
    # given a minimal valid manifest, when parsed, then the fields are there
    manifest = parse_manifest(_with(), source="ok.json")
    assert isinstance(manifest, PackManifest) and manifest.files["a.onnx"].role == "recognition"


def test_engine_built_from_a_good_models_dir_works(models_dir: Path, photo: Callable[[str], Image]) -> None:
    # given the real engine built from a verified copy in a models dir
    engine = build_engine(DlibEngineConfig(models_dir=models_dir))
    # when it runs on a real photo, then it finds and embeds the face
    image = photo("tom_hanks.png")
    dets = engine.detect(image)
    assert len(dets) == 1 and engine.embed(image, dets).shape == (1, 128)


@pytest.mark.parametrize("name", [RECOGNITION, LANDMARKS])
def test_engine_built_from_a_corrupt_pack_names_the_file(models_dir: Path, name: str) -> None:
    # given a models dir whose copy of ``name`` is corrupt
    _flip_byte(models_dir / PACK / name, 100)
    # when the real engine is built from it, then the error names the file and the folder
    with pytest.raises(PackFileError) as info:
        build_engine(DlibEngineConfig(models_dir=models_dir))
    assert name in str(info.value) and str(models_dir / PACK) in str(info.value)
