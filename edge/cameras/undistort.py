"""A camera's lens: its ``lens:`` config section, and the undistortion its worker applies before detection.

The rule: when a camera has a lens, every frame its pipeline processes is undistorted first, so
zones, floor points and detections all live in the undistorted picture. The remap tables are built
once per camera config (a changed config builds a new worker, and with it new tables), never per
frame. A frame of another resolution with the same aspect ratio (a sub-stream) gets the lens scaled
to it; a frame the lens cannot fit passes through raw with one warning: a lens never stops a camera.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Literal

import cv2
from pydantic import BaseModel, ConfigDict, Field, model_validator

from calibration.errors import CalibrationError
from calibration.lens import LensModel, UndistortMaps, undistort_maps
from vision.types import Frame

logger = logging.getLogger(__name__)


class LensConfig(BaseModel):
    """Pinhole intrinsics and OpenCV distortion of one camera, as `smartbranch calibrate lens` writes them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fx: float = Field(gt=0, description="Focal length along x, in pixels of image_size.")
    fy: float = Field(gt=0, description="Focal length along y, in pixels of image_size.")
    cx: float = Field(ge=0, description="Principal point x, in pixels.")
    cy: float = Field(ge=0, description="Principal point y, in pixels.")
    dist: tuple[float, float, float, float, float] = Field(
        description="Distortion coefficients k1, k2, p1, p2, k3 (OpenCV's order).")
    image_size: tuple[int, int] = Field(description="Width and height (pixels) of the images the lens was "
                                                    "calibrated on.")
    rms: float = Field(default=0.0, ge=0, description="Reprojection RMS of the calibration, in pixels.")
    alpha: float = Field(default=0.0, ge=0, le=1,
                         description="0 crops the undistorted picture to valid pixels only; 1 keeps every source "
                                     "pixel (black corners).")

    interpolation: Literal["linear", "nearest"] = Field(
        default="linear", description="linear blends four source pixels; nearest takes one, at about half the "
                                      "cost per frame (python -m bench.calibration), with up to half a pixel of "
                                      "jitter along edges.")

    @model_validator(mode="after")
    def _check_lens(self) -> LensConfig:
        self.model()  # the lens model's own checks: finite values, principal point inside the image
        return self

    def model(self) -> LensModel:
        return LensModel.from_config(self.model_dump())


class FrameUndistorter:
    """Undistorts one camera's frames; used by its worker thread only."""

    def __init__(self, lens: LensConfig, camera_id: str) -> None:
        self.lens = lens
        self.camera_id = camera_id
        self._model = lens.model()
        self._nearest = lens.interpolation == "nearest"
        self._size: tuple[int, int] | None = None
        self._maps: UndistortMaps | None = None
        self.maps_built = 0

    def __call__(self, frame: Frame) -> Frame:
        maps = self._maps_for((frame.width, frame.height))
        if maps is None:
            return frame
        try:
            return replace(frame, image=maps.apply(frame.image, nearest=self._nearest))
        except (cv2.error, CalibrationError):
            logger.exception("camera %s: undistorting frame %d failed; passing it through", self.camera_id,
                             frame.index)
            return frame

    def _maps_for(self, size: tuple[int, int]) -> UndistortMaps | None:
        if size == self._size:
            return self._maps
        self._size = size
        self._maps = None
        try:
            model = self._model if size == self._model.image_size else self._model.scaled(size)
            self._maps = undistort_maps(model, alpha=self.lens.alpha)
            self.maps_built += 1
        except CalibrationError as exc:
            logger.warning("camera %s: frames are %dx%d, the lens does not fit them (%s); frames pass through "
                           "as they are", self.camera_id, size[0], size[1], exc)
        return self._maps


def undistorter_for(camera: Any) -> FrameUndistorter | None:
    """The undistorter of a camera config with a ``lens`` section; None without one."""
    lens = getattr(camera, "lens", None)
    return FrameUndistorter(lens, camera.id) if isinstance(lens, LensConfig) else None
