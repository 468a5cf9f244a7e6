"""Where photos and consent evidence live: a small blob-store interface, encrypted at rest.

:class:`LocalBlobStore` (the default) keeps each blob as one Fernet token under ``data_dir/blobs``, with a
key derived from the console's data key for this purpose alone. An S3-compatible store implements the same
four methods. Keys are random (never a person's name or id), so a listing of the folder reveals nothing.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet

from vault.files import write_private
from vault.keys import DataKey, decrypt

BLOB_PURPOSE = "console-blobs"
HEX = frozenset("0123456789abcdef")  # a blob key is 32 lower-case hex digits (checked on every read)


class BlobNotFound(KeyError):
    """No blob under this key (never stored, or erased)."""


class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data`` encrypted; return its new key."""
        ...

    def get(self, key: str) -> bytes:
        """The plaintext of blob ``key``; :class:`BlobNotFound` when there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove blob ``key`` for good (no error when it is already gone)."""
        ...

    def exists(self, key: str) -> bool: ...


class LocalBlobStore:
    """Blobs as files ``root/ab/abcdef…``, each written to a temporary name, synced, then renamed."""

    def __init__(self, root: Path, key: DataKey) -> None:
        self.root = root
        self._cipher = Fernet(_b64(key.derive(BLOB_PURPOSE)))
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if len(key) != 32 or not HEX.issuperset(key):
            raise BlobNotFound(key)
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        key = secrets.token_hex(16)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, self._cipher.encrypt(data), tmp_name=f"{key}.tmp")
        return key

    def get(self, key: str) -> bytes:
        try:
            token = self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        return decrypt(self._cipher, token)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except BlobNotFound:
            return

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except BlobNotFound:
            return False


def _b64(raw: bytes) -> bytes:
    import base64

    return base64.urlsafe_b64encode(raw)
