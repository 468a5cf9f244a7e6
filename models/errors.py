"""Errors raised while locating or verifying model packs."""

from __future__ import annotations

from pathlib import Path


class ModelPackError(Exception):
    """A model pack that cannot be used. The message names the file and the folder searched."""


class PackNotFoundError(ModelPackError):
    def __init__(self, pack: str, searched: list[Path], hint: str = "") -> None:
        where = ", ".join(str(p) for p in searched) or "(nowhere)"
        super().__init__(f"model pack '{pack}' not found; searched: {where}" + (f"; {hint}" if hint else ""))
        self.pack = pack
        self.searched = searched


class PackFileError(ModelPackError):
    def __init__(self, pack: str, file: str, folder: Path, reason: str) -> None:
        super().__init__(f"model pack '{pack}': file '{file}' in folder {folder}: {reason}")
        self.pack = pack
        self.file = file
        self.folder = folder
        self.reason = reason


class DlibModelFormatError(ModelPackError):
    """A dlib-serialised network that cannot be read or does not match the expected architecture."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"dlib model file {path}: {reason} (at byte offset {offset}); the file is corrupt, "
                         "truncated or not the network this converter expects")
        self.path = path
        self.offset = offset
        self.reason = reason


class OnnxConversionError(ModelPackError):
    """Converting a model to ONNX, or caching the result, failed. The message names the file."""


class OnnxSessionError(ModelPackError):
    """onnxruntime could not load an ONNX model. The message names the file."""


class TfliteFormatError(ModelPackError):
    """A .tflite file that cannot be read, or that uses something the converter does not support."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"TFLite model file {path}: {reason} (at byte offset {offset})")
        self.path = path
        self.offset = offset
        self.reason = reason


class TfjsFormatError(ModelPackError):
    """A TF.js graph model (model.json plus weights) that cannot be read, or that uses an unsupported op."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"TF.js graph model {path}: {reason}")
        self.path = path
        self.reason = reason
