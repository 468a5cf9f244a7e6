"""What a clip frame goes through before the encoder: downscale to even dimensions, then blur the faces of
everyone who is not one of the clip's participants. Pure functions on arrays; the input is never modified."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from vision.types import Image

Box = tuple[float, float, float, float]

FACE_GROW = 0.2  # a detected face box is enlarged by this fraction of its width and height
HEAD_HEIGHT = 0.2  # without a face box: the top fraction of the person box ...
HEAD_WIDTH = 0.6  # ... and the central fraction of its width
MOSAIC_CELLS = 6  # a blurred face keeps at most this many samples across its long side


@dataclass(frozen=True, slots=True)
class ClipPerson:
    """One tracked person in a frame, for blurring. Boxes are xyxy in the frame's pixels."""

    track_id: int
    box: Box
    face_box: Box | None


class PersonLike(Protocol):
    """Anything with a person track id, its box and maybe its face box (ClipPerson, vision.people.PersonView)."""

    @property
    def track_id(self) -> int: ...

    @property
    def box(self) -> Box: ...

    @property
    def face_box(self) -> Box | None: ...


def even_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """The encoded size of a ``width`` x ``height`` frame: at most ``max_width`` wide, aspect kept, both even."""
    if width > max_width:
        height = round(height * max_width / width)
        width = max_width
    return max(2, width - width % 2), max(2, height - height % 2)


def head_region(person: PersonLike) -> Box:
    """The region to blur for a person: the face box grown by 20 %, or else a head estimate (the top 20 % of
    the person box, its central 60 %)."""
    if person.face_box is not None:
        x1, y1, x2, y2 = person.face_box
        dx, dy = (x2 - x1) * FACE_GROW / 2, (y2 - y1) * FACE_GROW / 2
        return x1 - dx, y1 - dy, x2 + dx, y2 + dy
    x1, y1, x2, y2 = person.box
    margin = (x2 - x1) * (1 - HEAD_WIDTH) / 2
    return x1 + margin, y1, x2 - margin, y1 + (y2 - y1) * HEAD_HEIGHT


def blur_regions(people: Sequence[PersonLike], keep: Collection[int], scale: float = 1.0) -> list[Box]:
    """Regions (scaled by ``scale``) to blur: the head of every person whose track id is not in ``keep``."""
    out: list[Box] = []
    for person in people:
        if person.track_id in keep:
            continue
        x1, y1, x2, y2 = head_region(person)
        out.append((x1 * scale, y1 * scale, x2 * scale, y2 * scale))
    return out


def mosaic(image: Image, regions: Sequence[Box]) -> int:
    """Blur ``regions`` of ``image`` in place, irreversibly: each is shrunk to a few samples across and
    enlarged back smoothly. Regions are clipped to the image; empty ones are skipped. Returns how many were
    blurred."""
    h, w = image.shape[:2]
    done = 0
    for box in regions:
        if not all(np.isfinite(box)):
            continue
        x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
        x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        roi = image[y1:y2, x1:x2]
        rw, rh = x2 - x1, y2 - y1
        step = max(rw, rh) / MOSAIC_CELLS
        small = cv2.resize(roi, (max(1, round(rw / step)), max(1, round(rh / step))), interpolation=cv2.INTER_AREA)
        roi[:] = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_LINEAR)
        done += 1
    return done


def prepare_image(image: Image, people: Sequence[PersonLike], keep: Collection[int] | None,
                  max_width: int) -> Image:
    """The frame as encoded: downscaled (or cropped by a pixel) to even dimensions at most ``max_width`` wide,
    with the heads of people not in ``keep`` blurred. ``keep`` None: blur nobody. The input is not modified; it
    is returned itself when nothing had to change."""
    h, w = image.shape[:2]
    out_w, out_h = even_size(w, h, max_width)
    scale = out_w / w if w > max_width else 1.0
    regions = blur_regions(people, keep, scale) if keep is not None else []
    if scale != 1.0:
        resized = np.asarray(cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        mosaic(resized, regions)
        return resized
    if not regions:
        return image[:out_h, :out_w]
    out = image[:out_h, :out_w].copy()
    mosaic(out, regions)
    return out
