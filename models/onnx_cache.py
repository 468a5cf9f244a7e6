"""The on-disk cache of converted ONNX models: atomic writes and a digest recorded after the model."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from models.errors import OnnxConversionError
from models.manifest import sha256_file

logger = logging.getLogger(__name__)


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


def default_cache_dir() -> Path:
    """``$SMARTBRANCH_CACHE/onnx``, or ``~/.cache/smartbranch/onnx``."""
    base = os.environ.get("SMARTBRANCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "smartbranch")
    return Path(base) / "onnx"


def cached_conversion(target: Path, source: Path, convert: Callable[[], bytes]) -> Path:
    """``target`` if its recorded digest holds, else ``convert()`` written there atomically with its digest."""
    if cache_is_valid(target):
        logger.debug("ONNX cache hit: %s", target)
        return target
    if target.exists():
        logger.warning("cached ONNX model %s fails its digest check; converting again", target)
    data = convert()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data)
        write_atomic(digest_path(target), (hashlib.sha256(data).hexdigest() + "\n").encode("ascii"))
    except OSError as exc:
        raise OnnxConversionError(f"cannot write the ONNX cache {target}: {exc.strerror or exc}") from exc
    logger.info("converted %s to ONNX: %s (%.1f kB)", source, target, len(data) / 1e3)
    return target
