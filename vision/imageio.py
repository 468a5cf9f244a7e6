"""Safe decoding of untrusted image bytes into BGR uint8 arrays.

The rule: nothing is decoded until the header has said how big the image is. Pillow's ``open``
reads only the header of the accepted formats (:data:`FORMATS`); the pixel count is checked
against ``max_pixels`` before ``load`` allocates and decodes anything. Other formats (TIFF, EPS,
PSD, ...) are refused unread: each is another parser exposed to uploads.

Decoding keeps at most the decoded image and the result in memory at once (about 2.3 times the
BGR array): no copy of the whole image for EXIF or mode conversion when none is needed, and the
pixels are copied out in strips.
"""

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
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")  # JPEG includes MPO (phone JPEGs with a second image)
_STRIP_ROWS = 256


def decode_image(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    """Decode ``data`` (JPEG, PNG, WebP, BMP or GIF) into a BGR uint8 image.

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
            img = PILImage.open(io.BytesIO(data), formats=FORMATS)
            width, height = img.size  # from the header: nothing is decoded yet
            if width * height > max_pixels:
                raise BadImageError("decompression_bomb",
                                    f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels")
            img.load()
    except BadImageError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise BadImageError("decompression_bomb", f"the image is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise BadImageError("not_an_image", "the file is not a JPEG, PNG, WebP, BMP or GIF image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError("truncated", f"the image is truncated or corrupt: {exc}") from exc
    ImageOps.exif_transpose(img, in_place=True)
    return _bgr(img if img.mode == "RGB" else img.convert("RGB"))


def _bgr(img: PILImage.Image) -> Image:
    """The pixels of an RGB image as a writable BGR array, copied in strips of rows."""
    width, height = img.size
    out = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, _STRIP_ROWS):
        bottom = min(height, top + _STRIP_ROWS)
        strip = img.crop((0, top, width, bottom)).tobytes("raw", "BGR")
        out[top:bottom] = np.frombuffer(strip, np.uint8).reshape(bottom - top, width, 3)
    return out
