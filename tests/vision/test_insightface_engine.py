"""The insightface engine with generated SCRFD/ArcFace-shaped ONNX models in a local pack folder.

Real InsightFace packs cannot be fetched here (and are non-commercial), so ``onnx_fakes`` builds
models with their exact input and output names, shapes and layouts whose answers can be computed
by hand. The engine runs them through onnxruntime exactly as it would run det_10g/w600k_r50.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from models.errors import PackFileError, PackNotFoundError
from models.manifest import builtin_manifests
from models.packs import list_packs
from tests.vision.onnx_fakes import (
    DET_FILE,
    PROBE_BOX_HALF,
    PROBE_KPS,
    REC_FILE,
    FakeFace,
    constant_detector,
    linear_recogniser,
    pack_manifest,
    probe_detector,
    recogniser_weights,
    reference_embedding,
    write_pack,
)
from vision.align import ARCFACE_TEMPLATE, norm_crop, similarity_transform, transform_points
from vision.engines.base import FaceEngine
from vision.engines.insightface_engine import (
    CPU,
    CUDA,
    InsightFaceEngine,
    InsightFaceEngineConfig,
    select_providers,
)
from vision.engines.registry import build_engine
from vision.errors import EngineConfigError
from vision.types import Image

PROBE = "fake_probe"


@pytest.fixture(scope="module")
def weights() -> np.ndarray:
    return recogniser_weights()


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory: pytest.TempPathFactory, weights: np.ndarray) -> Path:
    models_dir = tmp_path_factory.mktemp("models")
    write_pack(models_dir, PROBE, probe_detector(), linear_recogniser(weights))
    return models_dir


@pytest.fixture(scope="module")
def probe_engine(probe_dir: Path) -> InsightFaceEngine:
    return InsightFaceEngine(InsightFaceEngineConfig(pack=PROBE, models_dir=probe_dir))


def _config(models_dir: Path, pack: str = PROBE, **kwargs: Any) -> InsightFaceEngineConfig:
    return InsightFaceEngineConfig(pack=pack, models_dir=models_dir, **kwargs)


def _copy_pack(src: Path, dst_root: Path, name: str = PROBE) -> Path:
    shutil.copytree(src / PROBE, dst_root / name)
    return dst_root / name


def _rewrite_manifest(folder: Path, **changes: Any) -> None:
    (folder / "manifest.json").write_text(json.dumps(pack_manifest(folder.name, folder, **changes)),
                                          encoding="utf-8")


# ---------------------------------------------------------------- loading

def test_engine_loads_a_pack_folder_through_the_registry(probe_dir: Path) -> None:
    # given a models dir holding a pack folder with its two ONNX files and a manifest.json
    # when the engine is built from its config through the registry
    engine = build_engine(_config(probe_dir, min_face_px=24))
    # then it is the insightface engine, named after the pack, 512-d, with the configured minimum face
    assert isinstance(engine, InsightFaceEngine)
    assert (engine.model_id, engine.dim, engine.min_face_px) == (PROBE, 512, 24)
    assert CPU in engine.providers


def test_cuda_is_used_only_when_onnxruntime_lists_it(probe_engine: InsightFaceEngine) -> None:
    # given this machine's onnxruntime, then the sessions run on CUDA exactly when it is available
    assert (CUDA in probe_engine.providers) == (CUDA in ort.get_available_providers())
    assert set(probe_engine.providers) <= set(ort.get_available_providers())


@pytest.mark.parametrize(
    ("preferred", "available", "chosen"),
    [
        ((CUDA, CPU), [CUDA, CPU], [CUDA, CPU]),
        ((CUDA, CPU), ["AzureExecutionProvider", CPU], [CPU]),  # no GPU: CPU only
        ((CUDA,), [CPU], [CPU]),  # CPU is always the last resort
        ((CPU, CUDA), [CUDA, CPU], [CPU, CUDA]),  # the configured order wins
        (("TensorrtExecutionProvider", CUDA, CUDA), [CUDA, CPU], [CUDA, CPU]),  # unknown skipped, no repeats
        ((CUDA, CPU), [], [CPU]),
    ],
)
def test_select_providers(preferred: tuple[str, ...], available: list[str], chosen: list[str]) -> None:
    assert select_providers(preferred, available) == chosen


# ---------------------------------------------------------------- preprocessing (probe detector)

@pytest.mark.parametrize(
    ("bgr", "score"),
    [
        ((0, 0, 210), (210 - 127.5) / 128),  # red: channel 0 after BGR->RGB, normalised
        ((0, 0, 255), (255 - 127.5) / 128),
        ((255, 255, 255), (255 - 127.5) / 128),
        ((0, 0, 180), None),  # (180 - 127.5) / 128 = 0.41 < 0.5
        ((255, 0, 0), None),  # blue: would fire only if the engine sent BGR
        ((0, 255, 0), None),
        ((0, 0, 0), None),
    ],
    ids=["red-210", "red-255", "white", "red-180", "blue", "green", "black"],
)
def test_detector_input_is_rgb_normalised_nchw(probe_engine: InsightFaceEngine, bgr: tuple[int, int, int],
                                               score: float | None) -> None:
    # given a black 1280x720 frame with one 8x8 patch of colour at (400, 240), which the 640 letterbox
    # halves onto the stride-8 anchor point (200, 120)
    image = np.zeros((720, 1280, 3), np.uint8)
    image[236:244, 396:404] = bgr
    # when detected
    dets = probe_engine.detect(image)
    # then the probe fires with score (R - 127.5) / 128 exactly when the red channel is high enough
    if score is None:
        assert len(dets) == 0 and dets.landmarks is not None and dets.landmarks.shape == (0, 5, 2)
    else:
        assert len(dets) == 1
        assert float(dets.score[0]) == pytest.approx(score, abs=1e-6)


@pytest.mark.parametrize(
    ("shape", "det_size", "point", "scale"),
    [
        ((720, 1280), 640, (400, 240), 0.5),  # landscape: letterbox halves it
        ((1280, 720), 640, (240, 400), 0.5),  # portrait
        ((720, 1280), 320, (416, 224), 0.25),  # a smaller det_size: anchor point (104, 56)
        ((240, 320), 640, (108, 44), 2.0),  # enlarged: anchor point (216, 88)
    ],
)
def test_boxes_and_keypoints_come_back_in_image_pixels(probe_dir: Path, shape: tuple[int, int], det_size: int,
                                                       point: tuple[int, int], scale: float) -> None:
    # given a frame with a bright red patch at ``point``, which lands on a stride-8 anchor point
    engine = InsightFaceEngine(_config(probe_dir, det_size=det_size, min_face_px=8))
    image = np.zeros((*shape, 3), np.uint8)
    half = max(2, int(4 / scale))
    x, y = point
    image[y - half:y + half, x - half:x + half] = (0, 0, 255)
    # when detected
    dets = engine.detect(image)
    # then the probe's box (32 network px each side of the anchor) and keypoints are mapped back
    # through the letterbox scale onto the patch
    assert len(dets) == 1 and dets.landmarks is not None
    side = PROBE_BOX_HALF / scale
    expected_box = np.clip([x - side, y - side, x + side, y + side], 0, [shape[1] - 1, shape[0] - 1] * 2)
    np.testing.assert_allclose(dets.xyxy[0], expected_box, atol=1e-3)
    np.testing.assert_allclose(dets.landmarks[0], np.array(point) + PROBE_KPS / scale, atol=1e-3)


def test_nothing_to_find(probe_engine: InsightFaceEngine) -> None:
    empty = probe_engine.detect(np.zeros((0, 0, 3), np.uint8))
    assert len(empty) == 0 and empty.landmarks is not None
    dark = probe_engine.detect(np.zeros((100, 100, 3), np.uint8))
    assert len(dark) == 0
    assert probe_engine.embed(np.zeros((100, 100, 3), np.uint8), dark).shape == (0, 512)
    assert probe_engine.embed_chips([]).shape == (0, 512)
    assert probe_engine.chips(np.zeros((9, 9, 3), np.uint8), dark) == []


def test_recogniser_input_is_rgb_normalised_nchw(probe_engine: InsightFaceEngine, weights: np.ndarray) -> None:
    # given three distinct 112x112 chips (colour gradients, so that channel order and layout matter)
    rng = np.random.default_rng(1)
    chips = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(3)]
    chips[0][:, :, 2] = np.arange(112, dtype=np.uint8)[None, :] * 2  # red rises left to right
    # when embedded as one batch
    vectors = probe_engine.embed_chips(chips)
    # then each is the L2-normalised projection of the (RGB, (x - 127.5) / 127.5, NCHW) chip
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    for chip, vector in zip(chips, vectors, strict=True):
        np.testing.assert_allclose(vector, reference_embedding(chip, weights), atol=2e-5)
    # and a batch gives what single chips give
    np.testing.assert_allclose(probe_engine.embed_chips(chips[1:2])[0], vectors[1], atol=1e-6)
    flipped = [np.ascontiguousarray(chips[0][:, :, ::-1])]
    assert float(probe_engine.embed_chips(flipped)[0] @ vectors[0]) < 0.99


@pytest.mark.parametrize("shape", [(150, 150, 3), (112, 112, 1), (112, 96, 3)])
def test_chips_of_the_wrong_size_are_refused(probe_engine: InsightFaceEngine, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="112x112"):
        probe_engine.embed_chips([np.zeros(shape, np.uint8)])


# ---------------------------------------------------------------- a real photo, end to end

def _obama_faces(photo: Callable[[str], Image], engine: FaceEngine) -> tuple[Image, np.ndarray, np.ndarray, float]:
    """obama.jpg, dlib's face box, five InsightFace-order points built on dlib's eye centres, the 640 scale."""
    image = photo("obama.jpg")
    dets = engine.detect(image)
    assert dets.landmarks is not None
    lm = dets.landmarks[0]
    eyes = np.array([lm[0:2].mean(axis=0), lm[2:4].mean(axis=0)])
    eyes = eyes[np.argsort(eyes[:, 0])]
    points = transform_points(ARCFACE_TEMPLATE, similarity_transform(ARCFACE_TEMPLATE[:2], eyes))
    return image, dets.xyxy[0].astype(np.float64), points.astype(np.float64), 640 / max(image.shape[:2])


def test_engine_end_to_end_on_a_real_photo(tmp_path: Path, photo: Callable[[str], Image], engine: FaceEngine,
                                           weights: np.ndarray) -> None:
    # given obama.jpg and a detector whose outputs encode his face (found by dlib) at 640x640, plus a
    # weaker duplicate of it, a second face, one below the score threshold and one below min_face_px
    image, box, points, s = _obama_faces(photo, engine)
    face = FakeFace(tuple(box * s), points * s, 0.95)  # type: ignore[arg-type]
    faces = [
        face,
        FakeFace(tuple(box * s + 4), points * s + 4, 0.8, anchor=1),  # type: ignore[arg-type]
        FakeFace((40, 400, 90, 450), np.full((5, 2), 65.0) + ARCFACE_TEMPLATE / 3, 0.7, stride=16),
        FakeFace((300, 500, 360, 560), np.full((5, 2), 330.0), 0.3),
        FakeFace((10, 10, 20, 20), np.full((5, 2), 15.0), 0.9),  # 10 px at 640 = 18 px in the photo
    ]
    write_pack(tmp_path, "fake_obama", constant_detector(640, faces), linear_recogniser(weights))
    insight = build_engine(_config(tmp_path, pack="fake_obama", min_face_px=40))
    # when it detects and embeds
    dets = insight.detect(image)
    vectors = insight.embed(image, dets)
    # then two faces, best first, with 5 landmarks each, in the photo's pixels
    assert len(dets) == 2 and dets.landmarks is not None and dets.landmarks.shape == (2, 5, 2)
    np.testing.assert_allclose(dets.score, [0.95, 0.7], rtol=1e-6)
    np.testing.assert_allclose(dets.xyxy[0], box, atol=0.01)
    np.testing.assert_allclose(dets.landmarks[0], points, atol=0.01)
    # and L2-normalised 512-d embeddings of the ArcFace-aligned chips
    assert vectors.shape == (2, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    chips = insight.chips(image, dets)
    assert [c.shape for c in chips] == [(112, 112, 3)] * 2
    np.testing.assert_array_equal(chips[0], norm_crop(image, dets.landmarks[0]))
    np.testing.assert_allclose(vectors[0], reference_embedding(chips[0], weights), atol=2e-5)


# ---------------------------------------------------------------- bad packs

def test_a_missing_file_is_named_with_its_sha256_and_folder(tmp_path: Path, probe_dir: Path) -> None:
    folder = _copy_pack(probe_dir, tmp_path)
    expected = pack_manifest(PROBE, folder)["files"][DET_FILE]["sha256"]  # type: ignore[index]
    (folder / DET_FILE).unlink()
    with pytest.raises(PackFileError, match="missing") as info:
        build_engine(_config(tmp_path))
    assert DET_FILE in str(info.value) and expected in str(info.value) and str(folder) in str(info.value)


def test_a_wrong_file_is_named_with_both_digests(tmp_path: Path, probe_dir: Path) -> None:
    folder = _copy_pack(probe_dir, tmp_path)
    expected = pack_manifest(PROBE, folder)["files"][REC_FILE]["sha256"]  # type: ignore[index]
    shutil.copy(folder / DET_FILE, folder / REC_FILE)  # the wrong model under the recogniser's name
    with pytest.raises(PackFileError, match="sha256 mismatch") as info:
        build_engine(_config(tmp_path))
    assert REC_FILE in str(info.value) and expected in str(info.value) and str(folder) in str(info.value)


@pytest.mark.parametrize(("pack", "file", "sha"), [
    ("buffalo_l", "det_10g.onnx", "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"),
    ("buffalo_sc", "det_500m.onnx", "5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a"),
])
def test_an_empty_builtin_pack_folder_names_the_first_file(tmp_path: Path, pack: str, file: str, sha: str) -> None:
    # given an empty folder for a built-in pack (an unfinished copy): never a bare AssertionError
    (tmp_path / pack).mkdir()
    with pytest.raises(PackFileError) as info:
        build_engine(_config(tmp_path, pack=pack))
    assert file in str(info.value) and sha in str(info.value) and str(tmp_path / pack) in str(info.value)


def test_generated_files_are_not_buffalo_l(tmp_path: Path, probe_dir: Path) -> None:
    # given the generated models copied in as buffalo_l, with a manifest.json of their own
    folder = _copy_pack(probe_dir, tmp_path, "buffalo_l")
    for name, real in ((DET_FILE, "det_10g.onnx"), (REC_FILE, "w600k_r50.onnx")):
        assert name == real
    _rewrite_manifest(folder)
    # when built, then the built-in digests win over the folder's manifest and the detector is refused
    with pytest.raises(PackFileError, match="sha256 mismatch") as info:
        build_engine(_config(tmp_path, pack="buffalo_l"))
    assert builtin_manifests()["buffalo_l"].files[DET_FILE].sha256 in str(info.value)


@pytest.mark.parametrize("setup", ["no-folder", "empty-folder", "no-models-dir"])
def test_an_unknown_pack_names_the_manifest_it_looked_for(tmp_path: Path, setup: str) -> None:
    models_dir = tmp_path / "absent" if setup == "no-models-dir" else tmp_path
    if setup == "empty-folder":
        (tmp_path / "my_pack").mkdir()
    with pytest.raises(PackNotFoundError) as info:
        build_engine(_config(models_dir, pack="my_pack"))
    assert str(models_dir / "my_pack" / "manifest.json") in str(info.value)


@pytest.mark.parametrize(
    ("manifest", "needle"),
    [
        ("{not json", "manifest.json"),
        ('{"name": "x"}', "manifest.json"),
        (None, "names pack 'other'"),
    ],
    ids=["bad-json", "incomplete", "other-name"],
)
def test_an_unusable_pack_local_manifest_is_named(tmp_path: Path, probe_dir: Path, manifest: str | None,
                                                  needle: str) -> None:
    folder = _copy_pack(probe_dir, tmp_path)
    if manifest is None:
        _rewrite_manifest(folder, name="other")
    else:
        (folder / "manifest.json").write_text(manifest, encoding="utf-8")
    with pytest.raises(PackFileError, match=needle) as info:
        build_engine(_config(tmp_path))
    assert str(folder) in str(info.value)


def _file_change(file: str, **changes: Any) -> Callable[[Path], dict[str, Any]]:
    def change(folder: Path) -> dict[str, Any]:
        files: dict[str, Any] = pack_manifest(PROBE, folder)["files"]  # type: ignore[assignment]
        files[file] = {**files[file], **changes}
        return {"files": files}
    return change


_DET_INPUT = {"name": "input.1", "shape": [1, 3, None, None], "colour": "RGB", "mean": 127.5, "std": 128.0}


@pytest.mark.parametrize(
    ("change", "file", "needle"),
    [
        (_file_change(DET_FILE, tensor_input={**_DET_INPUT, "name": "data"}), DET_FILE, "input 'data'"),
        (_file_change(DET_FILE, tensor_input={**_DET_INPUT, "shape": [1, 3, 320, 320]}), DET_FILE, "fixed 320x320"),
        (_file_change(REC_FILE, tensor_input={**_DET_INPUT, "shape": [1, 3, 96, 96]}), REC_FILE, "shape"),
        (_file_change(DET_FILE, tensor_input=None), DET_FILE, "tensor_input"),
        (_file_change(DET_FILE, output_names=["448", "471", "494"]), DET_FILE, "outputs"),
        (_file_change(REC_FILE, output_names=["embedding"]), REC_FILE, "outputs"),
        (_file_change(DET_FILE, head={"kind": "scrfd", "strides": [8, 16, 32], "anchors": 2, "keypoints": 0}),
         DET_FILE, "5 keypoints"),
        (_file_change(REC_FILE, output_dim=None), REC_FILE, "output_dim"),
    ],
    ids=["input-name", "fixed-det-size", "rec-shape", "no-input-spec", "three-outputs", "rec-output-name",
         "no-keypoints", "no-dim"],
)
def test_a_manifest_that_does_not_fit_the_model_is_refused(tmp_path: Path, probe_dir: Path,
                                                           change: Callable[[Path], dict[str, Any]], file: str,
                                                           needle: str) -> None:
    # given a pack whose manifest declares something the ONNX file does not have
    folder = _copy_pack(probe_dir, tmp_path)
    _rewrite_manifest(folder, **change(folder))
    # when built, then the error names the file, the folder and what does not fit (or the config to change)
    with pytest.raises((PackFileError, EngineConfigError), match=needle) as info:
        build_engine(_config(tmp_path))
    if isinstance(info.value, PackFileError):
        assert info.value.file == file and info.value.folder == folder


def test_a_file_onnxruntime_cannot_load_is_named(tmp_path: Path, probe_dir: Path) -> None:
    folder = _copy_pack(probe_dir, tmp_path)
    (folder / DET_FILE).write_bytes(b"not an onnx model")
    _rewrite_manifest(folder)  # its digest now matches: the manifest alone cannot save a broken file
    with pytest.raises(PackFileError, match="onnxruntime cannot load it") as info:
        build_engine(_config(tmp_path))
    assert info.value.file == DET_FILE


# ---------------------------------------------------------------- config and listing

@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"det_size": 0}, "det_size"), ({"det_threshold": 0}, "det_threshold"), ({"nms_threshold": 1.5}, "nms"),
     ({"pack": "../buffalo_l"}, "pack"), ({"pack": ""}, "pack"), ({"providers": ()}, "providers"),
     ({"min_face_px": 2}, "min_face_px"), ({"colour": "red"}, "colour")],
)
def test_config_rejects_bad_values(tmp_path: Path, kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        InsightFaceEngineConfig(models_dir=tmp_path, **kwargs)


def test_config_needs_a_models_dir() -> None:
    with pytest.raises(ValidationError, match="models_dir"):
        InsightFaceEngineConfig()  # type: ignore[call-arg]


def test_det_size_must_fit_the_strides(probe_dir: Path) -> None:
    with pytest.raises(EngineConfigError, match="multiple"):
        build_engine(_config(probe_dir, det_size=100))


def test_models_list_shows_the_insightface_packs_and_their_licence(tmp_path: Path, probe_dir: Path) -> None:
    # given a models dir with the generated pack (its own manifest) and no InsightFace pack
    _copy_pack(probe_dir, tmp_path)
    # when packs are listed
    packs = {p.name: p for p in list_packs(tmp_path)}
    # then the built-in buffalo packs appear as not found, non-commercial, and the local pack verifies
    for name in ("buffalo_l", "buffalo_s", "buffalo_sc"):
        assert packs[name].commercial_use is False and "non-commercial" in packs[name].licence
        assert packs[name].folder is None and str(tmp_path / name) in packs[name].status
    assert packs[PROBE].status == "ok" and packs[PROBE].folder == tmp_path / PROBE
    assert packs[PROBE].commercial_use is False


@pytest.mark.parametrize("pack", ["buffalo_l", "buffalo_s", "buffalo_sc"])
def test_builtin_insightface_manifests_declare_what_the_engine_reads(pack: str) -> None:
    # given a built-in InsightFace manifest, then it is non-commercial and declares both models' inputs
    manifest = builtin_manifests()[pack]
    assert manifest.commercial_use is False and "non-commercial" in manifest.licence
    det = manifest.files[manifest.file_for_role("detection")]
    rec = manifest.files[manifest.file_for_role("recognition")]
    assert det.tensor_input is not None and det.head is not None and det.head.keypoints == 5
    assert (det.tensor_input.colour, det.tensor_input.mean, det.tensor_input.std) == ("RGB", 127.5, 128.0)
    assert rec.tensor_input is not None and rec.tensor_input.shape[1:] == (3, 112, 112) and rec.output_dim == 512
    assert (rec.tensor_input.colour, rec.tensor_input.mean, rec.tensor_input.std) == ("RGB", 127.5, 127.5)
    assert len(det.output_names) in (0, 9)


def test_a_declared_input_needs_three_channels(tmp_path: Path, probe_dir: Path) -> None:
    folder = _copy_pack(probe_dir, tmp_path)
    _rewrite_manifest(folder, **_file_change(REC_FILE, tensor_input={**_DET_INPUT, "shape": [1, 1, 112, 112]})(folder))
    with pytest.raises(PackFileError, match="3 channels"):
        build_engine(_config(tmp_path))
