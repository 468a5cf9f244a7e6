"""BlazeFace on a camera's moving regions, packed: several regions in one model call.

A motion-gated camera asks for faces in a few regions of its frame (what moves, and the faces it found last).
Run one by one, each region costs a whole model call, letterboxed to the model's input (256 px) at whatever
scale fits: a 300 px region is enlarged, although a 720 px tile finds the same faces at 256/720 of their size.
The rule here:

- every region no larger than a tile is shrunk to the tile scale (``input_size / tile_px``: an 80 px face
  becomes the same 28 px as in a tile, the scale the detector was checked at) and placed on a black square
  canvas of the model's input size, shelf by shelf, with ``gap`` black pixels between neighbours;
- one model call per canvas (usually one for all of a frame's regions);
- each face found is given to the region its centre lies in, mapped back to frame pixels and clipped to that
  region; a face centred in a gap belongs to none and is dropped;
- a region larger than a tile is detected as a frame of its own (tiles and a whole look, as
  :class:`vision.engines.blazeface_frames.BlazeFaceFrameDetector` does).

The merged faces then go through the frame detector's own finish (weighted NMS across regions, HOG's box
convention, the smallest face), so a face is reported as the frame detector would report it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.engines.blazeface import NUM_KEYPOINTS
from vision.engines.blazeface_frames import BlazeFaceFrameDetector, Region
from vision.types import Detections, FloatArray, Image

GAP_PX = 8  # black pixels between packed regions on a canvas


@dataclass(frozen=True, slots=True)
class Placement:
    """One region on a canvas: where it came from (frame pixels) and where it lies (canvas pixels)."""

    region: Region
    x: int
    y: int
    width: int
    height: int


def shelf_pack(sizes: list[tuple[int, int]], side: int, gap: int = GAP_PX) -> list[list[tuple[int, int, int]]]:
    """Place boxes of ``sizes`` (w, h), each at most ``side`` a side, on square canvases of ``side``: tallest
    first, left to right on shelves, ``gap`` pixels apart. Returns, per canvas, (index into sizes, x, y)."""
    for w, h in sizes:
        if not (0 < w <= side and 0 < h <= side):
            raise ValueError(f"a box of {w}x{h} does not fit a {side} px canvas")
    canvases: list[list[tuple[int, int, int]]] = []
    shelves: list[list[int]] = []  # per canvas: [shelf top, shelf height, next x, canvas index] of its last shelf
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i][1], -sizes[i][0])):
        w, h = sizes[index]
        placed = False
        for shelf in shelves:
            top, height, x, canvas = shelf
            if x + w <= side and h <= height:  # on this shelf
                canvases[canvas].append((index, x, top))
                shelf[2] = x + w + gap
                placed = True
                break
            if top + height + gap + h <= side:  # a new shelf below it on the same canvas
                shelf[:] = [top + height + gap, h, w + gap, canvas]
                canvases[canvas].append((index, 0, top + height + gap))
                placed = True
                break
        if not placed:
            canvases.append([(index, 0, 0)])
            shelves.append([0, h, w + gap, len(canvases) - 1])
    return canvases


class PackedRegions:
    """``detect(image, regions) -> Detections`` with a :class:`BlazeFaceFrameDetector`'s model and rules."""

    def __init__(self, frames: BlazeFaceFrameDetector, gap: int = GAP_PX) -> None:
        self._frames = frames
        self._side = frames.model.input_size
        self._scale = self._side / frames.tile_px
        self._gap = gap

    def _placements(self, regions: list[Region]) -> list[list[Placement]]:
        sizes = [(max(1, min(self._side, round((x2 - x1) * self._scale))),
                  max(1, min(self._side, round((y2 - y1) * self._scale)))) for x1, y1, x2, y2 in regions]
        return [[Placement(regions[i], x, y, *sizes[i]) for i, x, y in canvas]
                for canvas in shelf_pack(sizes, self._side, self._gap)]

    def detect(self, image: Image, regions: list[Region]) -> Detections:
        small = [r for r in regions if r[2] - r[0] <= self._frames.tile_px and r[3] - r[1] <= self._frames.tile_px]
        boxes: list[FloatArray] = []
        points: list[FloatArray] = []
        scores: list[FloatArray] = []
        for canvas_places in self._placements(small):
            canvas = np.zeros((self._side, self._side, 3), np.uint8)
            for p in canvas_places:
                x1, y1, x2, y2 = p.region
                canvas[p.y:p.y + p.height, p.x:p.x + p.width] = cv2.resize(
                    image[y1:y2, x1:x2], (p.width, p.height),
                    interpolation=cv2.INTER_AREA if p.width < x2 - x1 else cv2.INTER_LINEAR)
            found = self._frames.model.detect_unclipped(canvas)
            self._give_back(found, canvas_places, boxes, points, scores)
        for x1, y1, x2, y2 in (r for r in regions if r not in small):
            found = self._frames.raw(np.ascontiguousarray(image[y1:y2, x1:x2]))
            if len(found):
                shift = np.array([x1, y1], np.float32)
                boxes.append(found.xyxy + np.tile(shift, 2))
                points.append(found.landmarks + shift if found.landmarks is not None
                              else np.zeros((len(found), NUM_KEYPOINTS, 2), np.float32))
                scores.append(found.score)
        height, width = image.shape[:2]
        return self._frames.finish(boxes, points, scores, width, height)

    @staticmethod
    def _give_back(found: Detections, places: list[Placement], boxes: list[FloatArray], points: list[FloatArray],
                   scores: list[FloatArray]) -> None:
        """Each face of a canvas to the region its centre lies in, in frame pixels, clipped to that region."""
        if len(found) == 0 or found.landmarks is None:
            return
        cx = (found.xyxy[:, 0] + found.xyxy[:, 2]) / 2
        cy = (found.xyxy[:, 1] + found.xyxy[:, 3]) / 2
        for p in places:
            inside = (cx >= p.x) & (cx < p.x + p.width) & (cy >= p.y) & (cy < p.y + p.height)
            if not inside.any():
                continue
            x1, y1, x2, y2 = p.region
            scale = np.array([(x2 - x1) / p.width, (y2 - y1) / p.height], np.float32)
            origin = np.array([p.x, p.y], np.float32)
            shift = np.array([x1, y1], np.float32)
            xyxy = ((found.xyxy[inside].reshape(-1, 2, 2) - origin) * scale + shift).reshape(-1, 4)
            xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(x1, x2 - 1)
            xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(y1, y2 - 1)
            boxes.append(xyxy.astype(np.float32))
            points.append(((found.landmarks[inside] - origin) * scale + shift).astype(np.float32))
            scores.append(found.score[inside])
