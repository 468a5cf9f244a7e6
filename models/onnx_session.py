"""Open onnxruntime sessions with explicit execution providers and thread settings."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from models.errors import OnnxSessionError

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# onnxruntime's load errors derive from Exception directly, not from RuntimeError.
_LOAD_ERRORS: tuple[type[Exception], ...] = (ort_state.Fail, ort_state.InvalidProtobuf, ort_state.NoSuchFile,
                                             ort_state.InvalidGraph, ort_state.InvalidArgument,
                                             ort_state.NotImplemented, ort_state.RuntimeException,
                                             RuntimeError, ValueError, OSError)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers narrow), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_providers(available: Sequence[str] | None = None) -> list[str]:
    """CUDA first when onnxruntime offers it, the CPU provider always last."""
    offered = list(ort.get_available_providers() if available is None else available)
    return [CUDA, CPU] if CUDA in offered else [CPU]


def session_options(intra_op_threads: int | None = None, *, spin: bool = True) -> ort.SessionOptions:
    """Options for one model: ``intra_op_threads`` (None: every usable core), sequential execution.

    ``spin=False`` stops idle worker threads from busy-waiting between runs, at some latency cost;
    use it when the session shares cores with other busy threads.
    """
    threads = usable_cores() if intra_op_threads is None else intra_op_threads
    if threads < 1:
        raise ValueError(f"intra_op_threads must be at least 1, got {threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


def load_session(path: Path, *, intra_op_threads: int | None = None, providers: Sequence[str] | None = None,
                 spin: bool = True) -> Any:
    """An ``onnxruntime.InferenceSession`` on ``path`` (typed Any: onnxruntime ships no stubs).

    Raises :class:`models.errors.OnnxSessionError` naming the file when onnxruntime cannot load it.
    """
    chosen = list(providers) if providers is not None else default_providers()
    options = session_options(intra_op_threads, spin=spin)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    except _LOAD_ERRORS as exc:
        raise OnnxSessionError(f"onnxruntime cannot load {path}: {exc}") from exc
    logger.info("onnx session %s: providers %s, %s intra-op threads", Path(path).name,
                session.get_providers(), options.intra_op_num_threads)
    return session
