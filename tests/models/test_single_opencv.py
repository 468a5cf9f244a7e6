"""Exactly one cv2 distribution: rapidocr-onnxruntime is installed --no-deps so that opencv-python (the GUI
build) never overwrites opencv-python-headless."""

from __future__ import annotations

from importlib import metadata

import pytest

OTHER_CV2 = ("opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless")


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_only_opencv_python_headless_provides_cv2() -> None:
    assert _installed("opencv-python-headless")
    assert [n for n in OTHER_CV2 if _installed(n)] == []


def test_ppocr_pack_verifies_against_its_manifest() -> None:
    # given the rapidocr-onnxruntime wheel (installed --no-deps), when the pack is resolved, then all files verify
    from models.manifest import builtin_manifests
    from models.packs import resolve_pack

    manifest = builtin_manifests()["ppocr_v4_rapidocr"]
    assert manifest.licence.startswith("Apache-2.0") and manifest.commercial_use
    if not _installed("rapidocr-onnxruntime"):
        pytest.skip("rapidocr-onnxruntime is not installed (make install installs it --no-deps)")
    pack = resolve_pack("ppocr_v4_rapidocr")
    assert pack.path_for("recognition").name == "ch_PP-OCRv4_rec_infer.onnx"
