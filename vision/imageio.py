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
                 max_pixels: int = DEFAULT_MAX_PIXELS, fit_pixels: int | None = None) -> Image:
    """Decode ``data`` (JPEG, PNG, WebP, BMP or GIF) into a BGR uint8 image.

    ``fit_pixels``: a larger image comes back reduced (aspect kept) to at most that many pixels. A JPEG is
    then decoded at a reduced DCT scale, so its full-size pixels are never held in memory.

    Raises :class:`BadImageError` with code ``empty``, ``too_large``, ``not_an_image``,
    ``truncated`` or ``decompression_bomb``. EXIF orientation is applied.
    """
    if fit_pixels is not None and fit_pixels < 1:
        raise ValueError(f"fit_pixels must be positive, got {fit_pixels}")
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
            target = _fitted(width, height, fit_pixels)
            if target is not None and img.format == "JPEG":
                img.draft("RGB", target)  # the decoder skips DCT detail: 1/2, 1/4 or 1/8 of the size, never below
            img.load()
    except BadImageError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise BadImageError("decompression_bomb", f"the image is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise BadImageError("not_an_image", "the file is not a JPEG, PNG, WebP, BMP or GIF image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError("truncated", f"the image is truncated or corrupt: {exc}") from exc
    out: PILImage.Image = img
    target = _fitted(img.width, img.height, fit_pixels)
    if target is not None:
        out = img.resize(target, PILImage.Resampling.BOX, reducing_gap=2.0)
    ImageOps.exif_transpose(out, in_place=True)
    return _bgr(out if out.mode == "RGB" else out.convert("RGB"))


def _fitted(width: int, height: int, fit_pixels: int | None) -> tuple[int, int] | None:
    """The size that holds at most ``fit_pixels`` pixels with the aspect kept; None when no change is needed."""
    if fit_pixels is None or width * height <= fit_pixels:
        return None
    scale = (fit_pixels / float(width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


def _bgr(img: PILImage.Image) -> Image:
    """The pixels of an RGB image as a writable BGR array, copied in strips of rows."""
    width, height = img.size
    out = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, _STRIP_ROWS):
        bottom = min(height, top + _STRIP_ROWS)
        strip = img.crop((0, top, width, bottom)).tobytes("raw", "BGR")
        out[top:bottom] = np.frombuffer(strip, np.uint8).reshape(bottom - top, width, 3)
    return out
