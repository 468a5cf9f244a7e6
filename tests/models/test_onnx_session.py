"""onnxruntime sessions: explicit providers, thread settings and a clear error for a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import ModelPackError, OnnxSessionError
from models.onnx_session import CPU, CUDA, default_providers, load_session, session_options, usable_cores


@pytest.mark.parametrize(
    ("available", "chosen"),
    [
        ([CUDA, CPU], [CUDA, CPU]),
        (["TensorrtExecutionProvider", CUDA, CPU], [CUDA, CPU]),
        ([CPU], [CPU]),
        (["AzureExecutionProvider", CPU], [CPU]),
        ([], [CPU]),
    ],
)
def test_default_providers_prefer_cuda_and_end_with_cpu(available: list[str], chosen: list[str]) -> None:
    assert default_providers(available) == chosen


@pytest.mark.parametrize(("threads", "expected"), [(None, usable_cores()), (1, 1), (2, 2), (7, 7)])
def test_session_options_set_intra_op_threads(threads: int | None, expected: int) -> None:
    # given a thread count (None: every usable core), when options are made, then they carry it
    options = session_options(threads)
    assert options.intra_op_num_threads == expected and options.inter_op_num_threads == 1


@pytest.mark.parametrize("threads", [0, -1])
def test_session_options_refuse_no_threads(threads: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        session_options(threads)


@pytest.mark.parametrize("content", [b"", b"not an onnx model", None], ids=["empty", "garbage", "missing"])
def test_a_file_onnxruntime_cannot_load_is_named(tmp_path: Path, content: bytes | None) -> None:
    # given an empty, garbage or missing model file, when loaded, then OnnxSessionError names it
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(OnnxSessionError, match=r"model\.onnx") as info:
        load_session(path, intra_op_threads=1)
    assert isinstance(info.value, ModelPackError)
