"""Errors of the plate reader, grammar and matcher."""

from __future__ import annotations

from vision.errors import VisionError


class PlateError(VisionError):
    """Base class for plate errors."""

    code = "plate_error"


class InvalidPlateError(PlateError):
    """A string that can be no Chinese plate; ``reason`` says why (stable ``code``, readable message)."""

    def __init__(self, code: str, message: str, text: str) -> None:
        super().__init__(message)
        self.code = code
        self.text = text


class PlateModelError(PlateError):
    """The PP-OCR models cannot be used (missing pack, no character list, wrong output shape)."""

    code = "plate_model"
