"""decode_image: untrusted bytes to BGR uint8, with a stable error code for every bad input."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from vision.errors import BadImageError
from vision.imageio import DEFAULT_MAX_BYTES, decode_image


def _encode(img: PILImage.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _solid(size: tuple[int, int], colour: tuple[int, ...] | int, mode: str = "RGB") -> PILImage.Image:
    return PILImage.new(mode, size, colour)


@pytest.mark.parametrize(
    ("make", "kwargs", "code"),
    [
        (lambda jpeg: b"", {}, "empty"),
        (lambda jpeg: b"hello", {}, "not_an_image"),
        (lambda jpeg: b"\x00" * 1000, {}, "not_an_image"),
        (lambda jpeg: jpeg[: len(jpeg) // 2], {}, "truncated"),
        (lambda jpeg: jpeg[:200], {}, "truncated"),
        (lambda jpeg: jpeg, {"max_bytes": 1024}, "too_large"),
        (lambda jpeg: _encode(_solid((6000, 6000), 0, "1"), "PNG"), {"max_pixels": 1_000_000},
         "decompression_bomb"),
        (lambda jpeg: _encode(_solid((1001, 1000), 0, "L"), "PNG"), {"max_pixels": 1_000_000},
         "decompression_bomb"),
    ],
    ids=["empty", "text", "zeros", "jpeg-half", "jpeg-header-only", "over-max-bytes", "6000x6000-png",
         "one-row-over-limit"],
)
def test_bad_inputs_raise_bad_image_error_with_code(photo_bytes: Callable[[str], bytes],
                                                    make: Callable[[bytes], bytes], kwargs: dict[str, int],
                                                    code: str) -> None:
    # given bytes built from a real JPEG (obama.jpg) or from scratch
    data = make(photo_bytes("obama.jpg"))
    # when decoded
    with pytest.raises(BadImageError) as info:
        decode_image(data, **kwargs)
    # then the error carries the stable code and a message for people
    assert info.value.code == code
    assert str(info.value)


def test_size_limits_are_inclusive() -> None:
    # given a 1000x1000 PNG, when decoded with a limit of exactly its pixel count and byte length
    data = _encode(_solid((1000, 1000), 0, "L"), "PNG")
    image = decode_image(data, max_bytes=len(data), max_pixels=1_000_000)
    # then it decodes
    assert image.shape == (1000, 1000, 3)


@pytest.mark.parametrize(("side", "names_size"), [(8000, True), (14000, False)])
def test_the_bomb_is_refused_with_default_limits(side: int, names_size: bool) -> None:
    # given a PNG of a few kB whose header claims side x side pixels (64 M: over our 40 M limit;
    # 196 M: also over Pillow's own limit, which trips first)
    data = _encode(_solid((side, side), 0, "1"), "PNG")
    assert len(data) < 100_000
    # when decoded with the default limits, then it is refused as a bomb before pixels are allocated
    with pytest.raises(BadImageError) as info:
        decode_image(data)
    assert info.value.code == "decompression_bomb"
    assert (f"{side}x{side}" in str(info.value)) == names_size


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg", "tom_hanks.png"])
def test_real_photos_decode_to_bgr_uint8(photo_bytes: Callable[[str], bytes], name: str) -> None:
    # given a real JPEG or PNG
    data = photo_bytes(name)
    # when decoded
    image = decode_image(data)
    # then it is a contiguous HxWx3 uint8 array with the same size PIL reports
    with PILImage.open(io.BytesIO(data)) as ref:
        width, height = ref.size
    assert image.dtype == np.uint8
    assert image.shape == (height, width, 3)
    assert image.flags["C_CONTIGUOUS"]


def test_real_jpeg_channels_are_bgr(photo_bytes: Callable[[str], bytes]) -> None:
    # given a real JPEG and PIL's RGB decoding of it
    data = photo_bytes("obama.jpg")
    rgb = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))
    # when decoded, then the channels are reversed
    np.testing.assert_array_equal(decode_image(data), rgb[:, :, ::-1])


@pytest.mark.parametrize(
    ("colour", "bgr"),
    [((255, 0, 0), (0, 0, 255)), ((0, 255, 0), (0, 255, 0)), ((0, 0, 255), (255, 0, 0))],
    ids=["red", "green", "blue"],
)
def test_pure_colour_png_is_bgr(colour: tuple[int, int, int], bgr: tuple[int, int, int]) -> None:
    # given a pure-colour RGB PNG, when decoded, then the pixel is in BGR order
    image = decode_image(_encode(_solid((7, 5), colour), "PNG"))
    assert image.shape == (5, 7, 3)
    assert (image == np.array(bgr, np.uint8)).all()


@pytest.mark.parametrize(
    ("mode", "colour", "fmt"),
    [("L", 128, "PNG"), ("LA", (128, 255), "PNG"), ("RGBA", (128, 128, 128, 255), "PNG"),
     ("P", 0, "GIF"), ("L", 128, "JPEG"), ("RGB", (128, 128, 128), "BMP"), ("RGB", (128, 128, 128), "WEBP")],
)
def test_other_modes_and_formats_become_three_channels(mode: str, colour: int | tuple[int, ...], fmt: str) -> None:
    # given an image in a non-RGB mode or another format
    img = _solid((9, 4), colour, mode)
    if mode == "P":
        img.putpalette([128, 128, 128] * 256)
    # when decoded, then it has three equal grey channels
    image = decode_image(_encode(img, fmt))
    assert image.shape == (4, 9, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - 128).max() <= 2


@pytest.mark.parametrize(("orientation", "shape"), [(1, (10, 20, 3)), (3, (10, 20, 3)), (6, (20, 10, 3)),
                                                    (8, (20, 10, 3))])
def test_exif_orientation_is_applied(orientation: int, shape: tuple[int, int, int]) -> None:
    # given a 20x10 (WxH) JPEG with a red left half, tagged with an EXIF orientation
    img = _solid((20, 10), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 10, 10))
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    # when decoded
    image = decode_image(_encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    # then the pixels are turned upright
    assert image.shape == shape
    if orientation == 6:  # rotated 90 degrees clockwise: the red left half is now on top
        assert image[2, 5, 2] > 200 and image[2, 5, 0] < 60
        assert image[17, 5, 0] > 200 and image[17, 5, 2] < 60
    if orientation == 8:  # rotated 90 degrees counter-clockwise: red is at the bottom
        assert image[17, 5, 2] > 200 and image[2, 5, 0] > 200


def test_decoded_real_photo_feeds_the_engine(photo_bytes: Callable[[str], bytes], engine: object) -> None:
    # given obama.jpg rotated on disk but tagged with orientation 8 (a phone photo)
    upright = PILImage.open(io.BytesIO(photo_bytes("obama.jpg"))).convert("RGB")
    stored = upright.transpose(PILImage.Transpose.ROTATE_270)
    exif = PILImage.Exif()
    exif[0x0112] = 8
    data = _encode(stored, "JPEG", exif=exif.tobytes(), quality=95)
    # when decoded
    image = decode_image(data)
    # then it is upright again, and the real engine finds the face
    assert image.shape == (upright.height, upright.width, 3)
    assert len(engine.detect(image)) == 1  # type: ignore[attr-defined]


_PEAK_SCRIPT = """
import sys
from pathlib import Path
from vision.errors import BadImageError
from vision.imageio import decode_image

def hwm():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
    return int(line.split()[1]) * 1024

data = Path(sys.argv[1]).read_bytes()
before = hwm()
try:
    outcome = "x".join(str(n) for n in decode_image(data).shape)
except BadImageError as exc:
    outcome = exc.code
print(outcome, hwm() - before)
"""


def _decode_in_child(path: Path) -> tuple[str, int]:
    """Decode ``path`` in a fresh interpreter; its outcome and how much its peak RSS grew (bytes)."""
    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(path)], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2])
    outcome, growth = done.stdout.split()
    return outcome, int(growth)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc")
@pytest.mark.parametrize(("fmt", "mode", "kwargs"), [
    ("JPEG", "L", {"quality": 10}), ("PNG", "1", {}), ("WEBP", "L", {"lossless": True}), ("BMP", "1", {}),
])
def test_a_bomb_of_every_accepted_format_is_refused_from_its_header(tmp_path: Path, fmt: str, mode: str,
                                                                      kwargs: dict[str, object]) -> None:
    # given a small file whose header declares 8000x8000 pixels (64 M, over the 40 M limit)
    path = tmp_path / f"bomb.{fmt.lower()}"
    path.write_bytes(_encode(_solid((8000, 8000), 0, mode), fmt, **kwargs))
    assert path.stat().st_size < DEFAULT_MAX_BYTES
    # when it is decoded in a fresh process
    outcome, growth = _decode_in_child(path)
    # then it is refused as a bomb, and no pixels were decoded (64 M pixels would take 64 MB at least)
    assert outcome == "decompression_bomb"
    assert growth < 32 * 1024 * 1024, f"{fmt}: peak RSS grew {growth >> 20} MB"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc")
def test_a_40_megapixel_photo_decodes_in_little_more_than_its_own_size(photo_bytes: Callable[[str], bytes],
                                                                        tmp_path: Path) -> None:
    # given a real photo enlarged to 40 megapixels (7302x5477), as a JPEG
    big = PILImage.open(io.BytesIO(photo_bytes("obama.jpg"))).convert("RGB").resize((7302, 5477))
    path = tmp_path / "40mp.jpg"
    path.write_bytes(_encode(big, "JPEG", quality=80))
    del big
    # when it is decoded in a fresh process
    outcome, growth = _decode_in_child(path)
    # then the peak is the decoded image (4 bytes a pixel inside Pillow) and the BGR array, not six copies
    assert outcome == "5477x7302x3"
    bgr_bytes = 7302 * 5477 * 3
    assert growth < 3 * bgr_bytes, f"peak RSS grew {growth >> 20} MB for a {bgr_bytes >> 20} MB image"


@pytest.mark.parametrize("fmt", ["TIFF", "PCX", "TGA", "ICO"])
def test_formats_other_than_the_web_ones_are_not_opened(fmt: str) -> None:
    data = _encode(_solid((16, 16), (10, 20, 30)), fmt)
    with pytest.raises(BadImageError) as info:
        decode_image(data)
    assert info.value.code == "not_an_image"


@pytest.mark.parametrize(("fmt", "size", "fit", "expected"), [
    ("JPEG", (4000, 3000), 1_000_000, (1154, 866)),  # reduced: at most fit pixels, aspect kept
    ("PNG", (4000, 3000), 1_000_000, (1154, 866)),   # no DCT scaling for PNG, still reduced after decoding
    ("JPEG", (800, 600), 1_000_000, (800, 600)),     # small enough: unchanged
    ("JPEG", (1000, 1000), 1_000_000, (1000, 1000)),  # exactly the limit: unchanged
])
def test_fit_pixels_reduces_large_photos_only(fmt: str, size: tuple[int, int], fit: int,
                                              expected: tuple[int, int]) -> None:
    img = _solid(size, (200, 100, 50))
    image = decode_image(_encode(img, fmt), fit_pixels=fit)
    assert (image.shape[1], image.shape[0]) == expected
    assert image.shape[0] * image.shape[1] <= fit
    assert np.abs(image[expected[1] // 2, expected[0] // 2].astype(int) - [50, 100, 200]).max() <= 3


def test_fit_pixels_keeps_the_exif_orientation() -> None:
    # given a 4000x2000 (WxH) JPEG with a red left half, tagged as rotated 90 degrees clockwise
    img = _solid((4000, 2000), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 2000, 2000))
    exif = PILImage.Exif()
    exif[0x0112] = 6
    # when it is decoded reduced to at most 500k pixels
    image = decode_image(_encode(img, "JPEG", exif=exif.tobytes(), quality=95), fit_pixels=500_000)
    # then it is upright (taller than wide), reduced, with the red half on top
    assert image.shape[0] > image.shape[1] and image.shape[0] * image.shape[1] <= 500_000
    assert image[10, image.shape[1] // 2, 2] > 200 and image[-10, image.shape[1] // 2, 0] > 200


def test_bad_fit_pixels_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        decode_image(b"x", fit_pixels=0)
