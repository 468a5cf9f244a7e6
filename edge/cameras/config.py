"""The cameras' config section: where frames come from (SourceConfig) and what a camera watches."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.cameras.undistort import LensConfig
from edge.counter.config import CounterCameraConfig
from edge.redact import redact_url
from vision.motion import MotionConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    url: str = Field(description="Camera source: rtsp://…, http(s)://… (MJPEG/HLS), file:PATH or a video "
                                 "path, dir:PATH for a folder of images, usb:N for a local device.")
    fps: float | None = Field(default=None, gt=0, le=120,
                              description="Pacing for files and folders (frames per second). "
                                          "None uses the file's own rate; live cameras ignore it.")
    loop: bool = Field(default=False, description="Replay a file or folder when it ends.")
    realtime: bool = Field(default=True, description="Pace files like a live camera and drop stale frames.")
    decode_threads: int = Field(default=1, ge=0, le=16,
                                description="FFmpeg threads decoding this camera's video (streams and files). 1: "
                                            "a box decoding many cameras on few cores spends less CPU on one "
                                            "thread per camera than on FFmpeg's frame threads (python -m "
                                            "bench.branch, still scene); 0: FFmpeg's choice, one per core.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("camera source url is empty")
        parsed = urlparse(value)
        scheme = parsed.scheme.lower()
        shown = redact_url(value)  # a refusal never repeats the credentials
        if scheme in ("rtsp", "rtsps", "http", "https"):
            if not parsed.hostname:
                raise ValueError(f"camera url {shown!r} has no host")
        elif scheme == "usb":
            if not parsed.path.isdigit():
                raise ValueError(f"usb source must be usb:N with a device number, got {shown!r}")
        elif scheme not in ("file", "dir", "") and len(scheme) > 1:  # one letter: a Windows drive
            raise ValueError(f"unsupported camera url scheme {scheme!r} in {shown!r}; "
                             "use rtsp, http, https, file, dir or usb")
        return value

    @property
    def kind(self) -> Literal["stream", "usb", "file", "dir"]:
        scheme = urlparse(self.url).scheme.lower()
        if scheme in ("rtsp", "rtsps", "http", "https"):
            return "stream"
        if scheme == "usb":
            return "usb"
        if scheme == "dir":
            return "dir"
        return "file"

    @property
    def path(self) -> Path:
        for prefix in ("file:", "dir:"):
            if self.url.startswith(prefix):
                return Path(self.url[len(prefix):])
        return Path(self.url)


class CameraConfig(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Camera id.")
    name: str = Field(default="", description="Human name shown on cards, e.g. 正门.")
    role: Literal["entrance", "lobby", "counter", "parking"] = Field(description="What the camera watches.")
    source: SourceConfig = Field(description="Where frames come from.")
    enabled: bool = Field(default=True, description="Disabled cameras are not opened.")
    zone: list[tuple[float, float]] | None = Field(
        default=None, description="Optional polygon (image pixels); faces outside it are ignored. On a parking "
                                  "camera it is the entry zone: only plates inside it are read.")

    motion: MotionConfig = Field(default_factory=MotionConfig,
                                 description="Motion gating: faces and people are detected only where the picture "
                                             "moves, plus a whole-frame look every refresh_s (vision.motion).")
    lens: LensConfig | None = Field(
        default=None, description="Lens intrinsics and distortion (smartbranch calibrate lens); when set, frames are "
                                  "undistorted before detection and zones are drawn on the undistorted picture.")
    counter: CounterCameraConfig | None = Field(
        default=None, description="Counter cameras only: staff zone, waiting zones, counter zones and floor "
                                  "calibration.")

    @model_validator(mode="after")
    def _counter_only_on_counter(self) -> CameraConfig:
        if self.counter is not None and self.role != "counter":
            raise ValueError(f"camera {self.id}: 'counter' settings need role counter, not {self.role}")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id
