"""Domain errors of the vision library. Each carries a stable machine ``code``."""

from __future__ import annotations


class VisionError(Exception):
    """Base class for vision errors."""

    code = "vision_error"


class BadImageError(VisionError):
    """Bytes that are not a usable image: empty, not an image, truncated, or too large."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class FaceRejectedError(VisionError):
    """An image that holds no single usable face (none, several, too small, blurred)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class GalleryError(VisionError):
    code = "gallery_error"


class EngineConfigError(VisionError):
    code = "engine_config"
