"""Plate colour from the plate region: blue, yellow, green, white or black (HSV statistics)."""

from __future__ import annotations

import cv2
import numpy as np

from vision.types import Image

COLOURS = ("blue", "yellow", "green", "white", "black")


def classify_colour(crop: Image) -> str | None:
    """The plate's background colour, or None for an empty crop.

    Hue bands (OpenCV 0-180): yellow 12-34, green 35-95 (new-energy plates shade from white to
    green: saturation above 35 and a smaller share suffice), blue 96-130 (saturation above 70). Otherwise bright
    low-saturation pixels mean white and dark ones black.
    """
    if crop.size == 0:
        return None
    h, w = crop.shape[:2]
    core = crop[h // 8: h - h // 8 or h, w // 16: w - w // 16 or w]
    hsv = cv2.cvtColor(core, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.int32)
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    coloured = (sat > 70) & (val > 50)
    n = float(len(hue))
    shares = {
        "blue": float(np.count_nonzero(coloured & (hue >= 96) & (hue <= 130))) / n,
        "yellow": float(np.count_nonzero(coloured & (hue >= 12) & (hue <= 34))) / n,
        "green": float(np.count_nonzero((sat > 35) & (val > 50) & (hue >= 35) & (hue <= 95))) / n * 1.6,
    }
    best = max(shares, key=lambda k: shares[k])
    if shares[best] >= 0.25:
        return best
    bright = float(np.count_nonzero((sat <= 70) & (val >= 140))) / n
    dark = float(np.count_nonzero(val < 80)) / n
    return "white" if bright >= dark else "black"
