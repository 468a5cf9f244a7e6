"""dlib's face ResNet converted to ONNX: equal to dlib on real faces, batch-independent, cached, clear errors.

The reference is dlib-bin's own ``compute_face_descriptor`` on the very same aligned chips.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlib
import numpy as np
import onnx
import pytest

from models import dlib_convert
from models.dlib_convert import DLIB_RESNET_IO, cache_path, convert_dlib_resnet, ensure_onnx
from models.dlib_layers import AddPrev, Affine, Conv, Fc, InputRgb, Pool
from models.dlib_serial import read_dlib_net
from models.errors import DlibModelFormatError, ModelPackError, OnnxConversionError
from models.manifest import sha256_file
from models.onnx_session import load_session
from models.packs import resolve_pack
from vision.engines import dlib_engine
from vision.engines.base import DlibEngineConfig, FaceEngine, l2_normalise
from vision.engines.dlib_engine import DlibFaceEngine
from vision.types import Image

PHOTOS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "t1.jpg", "tom_hanks.png"]
COSINE_MIN = 0.9999  # the bar for keeping model_id "dlib_resnet_v1" (galleries stay compatible)
MAX_ABS_DIFF = 1e-4  # on raw (unnormalised, norm ~1.4) descriptors; measured ~3e-7 on x86 AVX2


@pytest.fixture(scope="module")
def dat_path() -> Path:
    return resolve_pack("dlib_resnet_v1").path_for("recognition")


@pytest.fixture(scope="module")
def onnx_path(dat_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_onnx(dat_path, tmp_path_factory.mktemp("onnx_cache"))


@pytest.fixture(scope="module")
def session(onnx_path: Path) -> Any:
    return load_session(onnx_path, intra_op_threads=2)


@pytest.fixture(scope="module")
def chips(engine: FaceEngine, photo: Callable[[str], Image]) -> list[Image]:
    """Aligned 150x150 BGR chips of every face HOG finds in the real photos (Obama x3, Biden, six, Hanks)."""
    out: list[Image] = []
    for name in PHOTOS:
        image = photo(name)
        out.extend(engine.chips(image, engine.detect(image)))
    assert len(out) >= 10
    return out


@pytest.fixture(scope="module")
def dlib_raw(dat_path: Path, chips: list[Image]) -> np.ndarray:
    """dlib-bin's own descriptors of the chips (RGB in, raw 128-d out)."""
    resnet = dlib.face_recognition_model_v1(str(dat_path))
    rgb = [np.ascontiguousarray(c[:, :, ::-1]) for c in chips]
    return np.asarray(resnet.compute_face_descriptor(rgb), np.float32)


def _run(session: Any, chips: list[Image]) -> np.ndarray:
    batch = np.ascontiguousarray(np.stack(chips)[..., ::-1])  # BGR -> RGB, NHWC uint8 as declared
    return np.asarray(session.run([DLIB_RESNET_IO.output_name], {DLIB_RESNET_IO.input_name: batch})[0], np.float32)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out: np.ndarray = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return out


# ---------------------------------------------------------------- equality with dlib


def test_onnx_equals_dlib_on_every_real_face(session: Any, chips: list[Image], dlib_raw: np.ndarray) -> None:
    # given dlib's descriptors of real face chips, when the converted model runs on the same chips
    onnx_raw = _run(session, chips)
    # then every face agrees: cosine >= 0.9999, raw vectors equal to float rounding, same norm
    cosine = _cosine(onnx_raw, dlib_raw)
    assert onnx_raw.shape == dlib_raw.shape == (len(chips), 128)
    assert cosine.min() >= COSINE_MIN, f"cosine per face: {np.round(cosine, 7)}"
    assert np.abs(onnx_raw - dlib_raw).max() <= MAX_ABS_DIFF
    assert np.allclose(np.linalg.norm(onnx_raw, axis=1), np.linalg.norm(dlib_raw, axis=1), rtol=1e-5)


def test_pairwise_distances_are_unchanged(session: Any, chips: list[Image], dlib_raw: np.ndarray) -> None:
    # given both embedders' vectors, when all pairwise Euclidean distances are compared (what thresholds see)
    onnx_raw = _run(session, chips)

    def distances(v: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.linalg.norm(v[:, None, :] - v[None, :, :], axis=2)
        return out

    # then they agree to 1e-4, so a threshold tuned on dlib holds for ONNX
    assert np.abs(distances(onnx_raw) - distances(dlib_raw)).max() <= MAX_ABS_DIFF


def test_batch_of_one_and_batch_of_eight_agree(session: Any, chips: list[Image]) -> None:
    # given eight real chips, when run one at a time and as one batch of 8
    eight = (chips * 8)[:8]
    singles = np.concatenate([_run(session, [c]) for c in eight])
    batched = _run(session, eight)
    # then the results are the same vectors
    assert batched.shape == (8, 128)
    assert np.abs(singles - batched).max() <= 1e-5


def test_engine_embed_chips_equals_the_dlib_embedder(chips: list[Image]) -> None:
    # given the engine with the ONNX embedder (the default) and with dlib's own
    onnx_engine = DlibFaceEngine(DlibEngineConfig(onnx_threads=2))
    dlib_backed = DlibFaceEngine(DlibEngineConfig(embedder="dlib"))
    # when both embed the same BGR chips
    a, b = onnx_engine.embed_chips(chips), dlib_backed.embed_chips(chips)
    # then they share the model id and give L2-normalised vectors with cosine >= 0.9999 per face
    assert onnx_engine.model_id == dlib_backed.model_id == "dlib_resnet_v1_flip"  # flip TTA by default
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(1).min() >= COSINE_MIN
    # and no chips give an empty (0, 128) array
    assert onnx_engine.embed_chips([]).shape == (0, 128)


@pytest.mark.parametrize(("shape", "dtype"), [((150, 150), np.uint8), ((112, 112, 3), np.uint8),
                                              ((150, 150, 3), np.float32)])
def test_engine_rejects_chips_that_are_not_150x150_bgr_uint8(shape: tuple[int, ...], dtype: type) -> None:
    # given a chip of the wrong size or type, when embedded with the ONNX embedder, then ValueError says why
    engine = DlibFaceEngine(DlibEngineConfig(onnx_threads=1))
    with pytest.raises(ValueError, match="150, 150, 3"):
        engine.embed_chips([np.zeros(shape, dtype)])


def test_a_failed_conversion_stops_engine_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a conversion that fails, when the ONNX engine is built, then the error surfaces (no dlib fallback)
    def broken(dat: Path, cache_dir: Path | None = None) -> Path:
        raise OnnxConversionError(f"cannot convert {dat}")

    monkeypatch.setattr(dlib_engine, "ensure_onnx", broken)
    with pytest.raises(OnnxConversionError, match=r"dlib_face_recognition_resnet_model_v1\.dat"):
        DlibFaceEngine(DlibEngineConfig())


@pytest.mark.parametrize("kwargs", [{"embedder": "tf"}, {"onnx_threads": 0}, {"onnx_threads": -2}])
def test_engine_config_rejects_bad_embedder_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        DlibEngineConfig(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the converted model and the parser


def test_model_declares_its_io_and_source(onnx_path: Path, dat_path: Path) -> None:
    # given the converted model, when loaded with onnx
    model = onnx.load(str(onnx_path))
    (inp,), (out,) = model.graph.input, model.graph.output

    def dims(value: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    # then input and output are the declared ones, with a dynamic batch axis
    assert (inp.name, inp.type.tensor_type.elem_type) == ("chips", onnx.TensorProto.UINT8)
    assert dims(inp) == ["batch", 150, 150, 3]
    assert (out.name, out.type.tensor_type.elem_type) == ("descriptor", onnx.TensorProto.FLOAT)
    assert dims(out) == ["batch", 128]
    # and it records the .dat it came from
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["source_sha256"] == sha256_file(dat_path) and onnx_path.name.count(meta["source_sha256"]) == 1


def test_parser_reads_the_whole_resnet(dat_path: Path) -> None:
    # given the shipped .dat, when parsed against the declared architecture
    net = read_dlib_net(dat_path)
    kinds = [type(layer) for layer in net.layers]
    # then it holds dlib's input (with its stored channel means), 29 con + 29 affine, 14 residual adds,
    # 5 average pools (4 shortcuts + the global one), one max pool and the 256 -> 128 fc
    first = net.layers[0]
    assert isinstance(first, InputRgb) and (first.rows, first.cols) == (150, 150)
    assert np.allclose(first.mean_rgb, (122.782, 117.001, 104.298), atol=1e-4)
    assert (kinds.count(Conv), kinds.count(Affine), kinds.count(AddPrev), kinds.count(Fc)) == (29, 29, 14, 1)
    pools = [layer for layer in net.layers if isinstance(layer, Pool)]
    assert [p.kind for p in pools].count("avg") == 5 and [p.kind for p in pools].count("max") == 1
    fc = net.layers[-1]
    assert isinstance(fc, Fc) and fc.weights.shape == (256, 128) and fc.bias is None
    assert net.loss == "loss_metric_2"


# ---------------------------------------------------------------- cache


def test_second_call_reuses_the_cache(dat_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a first ensure_onnx that converts into an empty cache dir
    first = ensure_onnx(dat_path, tmp_path)
    mtime = first.stat().st_mtime_ns
    assert first == cache_path(tmp_path, sha256_file(dat_path)) and first.is_file()

    # when called again with conversion made impossible
    def no_conversion(*args: object, **kwargs: object) -> onnx.ModelProto:
        raise AssertionError("converted again")

    monkeypatch.setattr(dlib_convert, "convert_dlib_resnet", no_conversion)
    second = ensure_onnx(dat_path, tmp_path)
    # then the same file is returned untouched
    assert second == first and second.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_dir_defaults_to_smartbranch_cache(dat_path: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # given SMARTBRANCH_CACHE, when no cache dir is passed, then the model lands in $SMARTBRANCH_CACHE/onnx
    monkeypatch.setenv("SMARTBRANCH_CACHE", str(tmp_path))
    assert ensure_onnx(dat_path).parent == tmp_path / "onnx"


def _flip_middle(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


CACHE_DAMAGE: list[tuple[str, Callable[[Path], None]]] = [
    ("one weight byte flipped", _flip_middle),
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])),
    ("empty", lambda p: p.write_bytes(b"")),
    ("digest missing", lambda p: p.with_name(p.name + ".sha256").unlink()),
    ("digest garbage", lambda p: p.with_name(p.name + ".sha256").write_text("not a digest")),
    ("model deleted", lambda p: p.unlink()),
]


@pytest.mark.parametrize("damage", [d[1] for d in CACHE_DAMAGE], ids=[d[0] for d in CACHE_DAMAGE])
def test_a_corrupt_cache_file_is_rebuilt(dat_path: Path, onnx_path: Path, tmp_path: Path,
                                         damage: Callable[[Path], None]) -> None:
    # given a good cache whose model or digest file is then damaged
    cached = ensure_onnx(dat_path, tmp_path)
    damage(cached)
    # when ensure_onnx runs again, then the model is converted again, byte for byte as before, and loads
    rebuilt = ensure_onnx(dat_path, tmp_path)
    assert rebuilt == cached
    assert rebuilt.read_bytes() == onnx_path.read_bytes()
    assert load_session(rebuilt, intra_op_threads=1).get_inputs()[0].name == "chips"


# ---------------------------------------------------------------- a corrupt .dat


def _replace_first(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


def _input_112(data: bytes) -> bytes:
    """The input layer's rows and cols (150 = 0x96, packed ints) rewritten as 112 (0x70)."""
    start = data.index(b"\x01\x96\x01\x96", data.index(b"input_rgb_image_sized"))
    return data[:start] + b"\x01\x70\x01\x70" + data[start + 4:]


DAT_DAMAGE: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("empty", lambda d: b"", "end of file"),
    ("truncated", lambda d: d[: len(d) // 2], "end of file"),
    ("last byte missing", lambda d: d[:-1], "end of file"),
    ("trailing bytes", lambda d: d + b"\x00\x01", "trailing bytes"),
    ("wrong loss version", lambda d: b"\x01\x07" + d[2:], "unexpected version 7"),
    ("wrong loss layer", lambda d: _replace_first(d, b"loss_metric_2", b"loss_mmod___2"), "loss_mmod___2"),
    ("wrong con layer", lambda d: _replace_first(d, b"con_4", b"con_9"), "con_9"),
    ("wrong input layer", lambda d: _replace_first(d, b"input_rgb_image_sized", b"input_rgb_image_sizes"),
     "input_rgb_image_sizes"),
    ("wrong input size", _input_112, "input is 112x112, expected 150x150"),
    ("not a dlib file", lambda d: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "integer control byte"),
]


@pytest.mark.parametrize(("damage", "reason"), [(d[1], d[2]) for d in DAT_DAMAGE], ids=[d[0] for d in DAT_DAMAGE])
def test_a_corrupt_dat_gives_an_error_naming_the_file(dat_path: Path, tmp_path: Path,
                                                      damage: Callable[[bytes], bytes], reason: str) -> None:
    # given a damaged copy of the .dat
    bad = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    bad.write_bytes(damage(dat_path.read_bytes()))
    # when converted, then DlibModelFormatError (a ModelPackError) names the file, the offset and the reason
    with pytest.raises(DlibModelFormatError, match=reason) as info:
        convert_dlib_resnet(bad)
    assert str(bad) in str(info.value) and info.value.path == str(bad) and "offset" in str(info.value)
    # and ensure_onnx raises the same and leaves nothing in the cache
    cache = tmp_path / "cache"
    with pytest.raises(ModelPackError, match="corrupt"):
        ensure_onnx(bad, cache)
    assert not list(cache.glob("*")) if cache.exists() else True


def test_a_missing_dat_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.dat"
    with pytest.raises(ModelPackError, match=r"absent\.dat"):
        ensure_onnx(missing, tmp_path / "cache")
    with pytest.raises(DlibModelFormatError, match=r"absent\.dat"):
        convert_dlib_resnet(missing)


def test_l2_normalised_onnx_vectors_match_normalised_dlib(session: Any, chips: list[Image],
                                                          dlib_raw: np.ndarray) -> None:
    # given raw vectors from both, when L2-normalised as the engine does, then they are equal to 1e-4
    assert np.abs(l2_normalise(_run(session, chips)) - l2_normalise(dlib_raw)).max() <= MAX_ABS_DIFF
