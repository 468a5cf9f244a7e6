"""Safe decoding of untrusted image bytes into BGR uint8 arrays."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from vision.errors import BadImageError
from vision.types import Image

DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_BYTES = 15 * 1024 * 1024


def decode_image(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    """Decode ``data`` (JPEG, PNG, WebP, BMP...) into a BGR uint8 image.

    Raises :class:`BadImageError` with code ``empty``, ``too_large``, ``not_an_image``,
    ``truncated`` or ``decompression_bomb``. EXIF orientation is applied.
    """
    if not data:
        raise BadImageError("empty", "the file is empty")
    if len(data) > max_bytes:
        raise BadImageError("too_large", f"the file is {len(data)} bytes; the limit is {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            img = PILImage.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise BadImageError("decompression_bomb",
                                    f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels")
            img.load()
    except BadImageError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise BadImageError("decompression_bomb", f"the image is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise BadImageError("not_an_image", "the file is not an image in a known format") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError("truncated", f"the image is truncated or corrupt: {exc}") from exc
    upright = ImageOps.exif_transpose(img) or img
    rgb = np.asarray(upright.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])
