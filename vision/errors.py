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


class GalleryAuthError(GalleryError):
    """Gallery files that cannot be shown authentic: an id map without a MAC or whose MAC does not verify
    (edited, or written under another key), or an index file that is not the one the id map names."""

    code = "gallery_not_authentic"


class GalleryUnsealedError(GalleryAuthError):
    """An id map that carries no MAC at all: written by an older version, or its MAC was removed."""

    code = "gallery_unsealed"


class GalleryBindingError(GalleryError):
    """Authentic gallery files that belong to another context (at the edge: another store epoch)."""

    code = "gallery_other_context"


class EngineConfigError(VisionError):
    code = "engine_config"


class EngineBusyError(VisionError):
    """The engine pool had no room for a job, or no answer for it, within the caller's time limit."""

    code = "engine_busy"


class EngineClosedError(VisionError):
    """A job was sent to an engine pool that has been closed."""

    code = "engine_closed"


class PopulationError(VisionError):
    """Population statistics or a whitening transform that cannot be used as asked."""

    code = "population_error"


class PopulationInputError(PopulationError):
    """Embeddings that cannot join a population: wrong shape or dimension, non-finite, or all zeros."""

    code = "population_bad_input"


class PopulationModelError(PopulationError):
    """Statistics, vectors or a transform of another face model than the one asked for."""

    code = "population_other_model"


class PopulationFileError(PopulationError):
    """A serialised population or transform that is not one: bad JSON, another format or version, bad arrays."""

    code = "population_bad_file"
