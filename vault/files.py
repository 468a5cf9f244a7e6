"""Writing a secret or an encrypted blob to disk: readable by the owner only from its first byte, whole or not
at all (a temporary file, flushed and synced, then renamed over the target)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes, *, tmp_name: str | None = None) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (the temporary file never has wider rights).

    ``tmp_name``: the temporary file's name beside ``path`` (default ``.<name>.tmp``); it must not exist."""
    tmp = path.with_name(tmp_name or f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
