"""The on-disk cache of converted ONNX models: atomic writes and a digest recorded after the model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from models.manifest import sha256_file


def digest_path(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.name + ".sha256")


def cache_is_valid(onnx_path: Path) -> bool:
    """A cached model counts only if its recorded digest (written after it) matches its bytes."""
    digest_file = digest_path(onnx_path)
    if not onnx_path.is_file() or not digest_file.is_file():
        return False
    try:
        recorded = digest_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return recorded == sha256_file(onnx_path)


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
