"""Errors of encryption at rest."""

from __future__ import annotations


class VaultError(Exception):
    """Base class."""


class KeyMaterialError(VaultError):
    """A data key that cannot be used (not 32 bytes, not a Fernet key, a key file that cannot be read), or
    stored data that the configured key does not decrypt; the message names the source."""


class ClipFileError(VaultError):
    """A clip file that cannot be read: not in the encrypted clip format, cut short, changed, or encrypted
    with another key. No byte of it is served."""
