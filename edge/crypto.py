"""Encryption at rest for photos (PIPL / GDPR art. 9): Fernet with a key from the environment."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from edge.errors import ConfigError

logger = logging.getLogger(__name__)

KEY_ENV = "SMARTBRANCH_DATA_KEY"


def load_cipher(data_dir: Path) -> Fernet:
    """The key comes from ``$SMARTBRANCH_DATA_KEY``. Without it, a key file in ``data_dir`` is used,
    created on first start with mode 0600, and a warning says to move it into the environment."""
    key = os.environ.get(KEY_ENV)
    if key:
        try:
            return Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise ConfigError(f"${KEY_ENV} is not a valid Fernet key (32 url-safe base64 bytes)") from exc
    path = data_dir / "data.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
        logger.warning("no $%s set; created key file %s. Set the environment variable in production.",
                       KEY_ENV, path)
    try:
        return Fernet(path.read_bytes().strip())
    except ValueError as exc:
        raise ConfigError(f"key file {path} is not a valid Fernet key") from exc


def decrypt(cipher: Fernet, blob: bytes) -> bytes:
    try:
        return cipher.decrypt(blob)
    except InvalidToken as exc:
        raise ConfigError("stored data cannot be decrypted with the configured key") from exc
