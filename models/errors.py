"""Errors raised while locating or verifying model packs."""

from __future__ import annotations

from pathlib import Path


class ModelPackError(Exception):
    """A model pack that cannot be used. The message names the file and the folder searched."""


class PackNotFoundError(ModelPackError):
    def __init__(self, pack: str, searched: list[Path]) -> None:
        where = ", ".join(str(p) for p in searched) or "(nowhere)"
        super().__init__(f"model pack '{pack}' not found; searched: {where}")
        self.pack = pack
        self.searched = searched


class PackFileError(ModelPackError):
    def __init__(self, pack: str, file: str, folder: Path, reason: str) -> None:
        super().__init__(f"model pack '{pack}': file '{file}' in folder {folder}: {reason}")
        self.pack = pack
        self.file = file
        self.folder = folder
        self.reason = reason
