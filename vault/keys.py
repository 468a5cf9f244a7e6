"""Encryption at rest (PIPL / GDPR art. 9): one Fernet data key, and keys derived from it for other purposes.

The data key comes from ``$SMARTBRANCH_DATA_KEY`` or, without it, from ``data_dir/data.key``. This module
only reads and writes keys; whether a key may be created, and whether it is the right one for the data
already stored, is decided by :mod:`edge.store.datadir` (a key is made only for an empty data folder).

Other secrets are derived from the data key with HKDF-SHA256, one ``purpose`` label each (for example
``gallery-mac`` for the MAC of the gallery files), so that a key for one purpose never serves another and
rotating the data key rotates them all. :attr:`DataKey.key_id` is such a derived value too: it names a key
in messages and in the data folder without revealing it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import KeyMaterialError

logger = logging.getLogger(__name__)

KEY_ENV = "SMARTBRANCH_DATA_KEY"
KEY_FILE = "data.key"
GALLERY_MAC_PURPOSE = "gallery-mac"  # DataKey.derive(GALLERY_MAC_PURPOSE): the MAC key of the gallery files
_LABEL = b"smartbranch/"


@dataclass(frozen=True, slots=True)
class DataKey:
    """A Fernet data key (32 bytes: 16 for HMAC signing, 16 for AES) and where it was read from."""

    raw: bytes = field(repr=False)
    source: str  # "$SMARTBRANCH_DATA_KEY", a key file's path, or "new"

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise KeyMaterialError(f"a data key is 32 bytes, got {len(self.raw)} ({self.source})")

    @classmethod
    def from_text(cls, text: str | bytes, source: str) -> DataKey:
        """Parse a Fernet key (url-safe base64 of 32 bytes); KeyMaterialError naming ``source`` otherwise."""
        encoded = text.encode("ascii", "replace") if isinstance(text, str) else text
        try:
            raw = base64.urlsafe_b64decode(encoded.strip())
        except (binascii.Error, ValueError) as exc:
            raise KeyMaterialError(f"{source} is not a valid Fernet key (32 url-safe base64 bytes)") from exc
        if len(raw) != 32:
            raise KeyMaterialError(f"{source} is not a valid Fernet key (32 url-safe base64 bytes)")
        return cls(raw, source)

    @classmethod
    def generate(cls) -> DataKey:
        return cls.from_text(Fernet.generate_key(), "new")

    @property
    def encoded(self) -> bytes:
        """The key as Fernet writes it (what goes into the environment variable or the key file)."""
        return base64.urlsafe_b64encode(self.raw)

    @property
    def fernet(self) -> Fernet:
        return Fernet(self.encoded)

    def derive(self, purpose: str, length: int = 32) -> bytes:
        """A key for ``purpose`` alone (HKDF-SHA256 over the data key, info ``smartbranch/<purpose>``)."""
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                    info=_LABEL + purpose.encode("ascii")).derive(self.raw)

    @property
    def key_id(self) -> str:
        """A public name of this key (16 derived bytes in hex): equal ids mean equal keys."""
        return self.derive("key-id", 16).hex()


def env_key() -> DataKey | None:
    """The key in ``$SMARTBRANCH_DATA_KEY``; None when it is unset or empty."""
    text = os.environ.get(KEY_ENV)
    return DataKey.from_text(text, f"${KEY_ENV}") if text else None


def file_key(data_dir: Path) -> DataKey | None:
    """The key in ``data_dir/data.key``; None when there is no such file."""
    path = data_dir / KEY_FILE
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyMaterialError(f"key file {path} cannot be read: {exc}") from exc
    return DataKey.from_text(text, str(path))


def configured_key(data_dir: Path) -> DataKey | None:
    """The key the box is configured with: the environment variable wins over the key file."""
    return env_key() or file_key(data_dir)


def write_key_file(path: Path, key: DataKey) -> None:
    """Write ``key`` to a new file, mode 0600 from the start; refuses to overwrite an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.encoded + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def decrypt(cipher: Fernet, blob: bytes) -> bytes:
    try:
        return cipher.decrypt(blob)
    except InvalidToken as exc:
        raise KeyMaterialError("stored data cannot be decrypted with the configured key") from exc

