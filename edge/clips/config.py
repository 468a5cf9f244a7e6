"""Configuration of the compliance clips (``clips:`` in the YAML): what the counter cameras record."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClipConfig(_Strict):
    enabled: bool = Field(default=True, description="Record a clip of every service interaction on counter cameras.")
    dir: Path = Field(default=Path("clips"),
                      description="Folder of the clips (<camera>/<YYYY-MM-DD>/<clip_id>.mp4 under it). A relative "
                                  "path is taken relative to the data dir.")
    pre_roll_s: float = Field(default=5.0, ge=0, le=60,
                              description="Seconds of video before the interaction started, from a per-camera "
                                          "ring buffer.")
    post_roll_s: float = Field(default=3.0, ge=0, le=60,
                               description="Seconds of video kept after the interaction ended.")
    blur_non_participants: bool = Field(default=True,
                                        description="Blur the face of everyone in the clip who is neither the "
                                                    "clip's staff member nor its customer.")
    preset: X264Preset = Field(default="veryfast",
                               description="libx264 speed preset: faster presets cost less CPU and give bigger "
                                           "files.")
    crf: int = Field(default=23, ge=0, le=51,
                     description="libx264 constant rate factor: lower is better quality and bigger files.")
    max_width: int = Field(default=1280, ge=64, le=7680,
                           description="Frames wider than this are downscaled (aspect kept, even dimensions).")
    queue_size: int = Field(default=64, ge=1, le=10000,
                            description="Frames waiting for the encoder, all clips of one camera together. When "
                                        "it is full the newest frame is dropped for that clip and counted; the "
                                        "camera is never slowed down.")
    retention_days: int = Field(default=90, ge=1, le=3650,
                                description="Clips older than this are deleted, unless under review hold.")
    snapshot_retention_days: int = Field(default=30, ge=1, le=3650,
                                         description="Customer crops shown on alert cards (customer_unattended) "
                                                     "older than this are deleted.")
    max_clip_s: float = Field(default=1800.0, gt=0, le=86400,
                              description="A recording longer than this (pre-roll included) is cut and closed.")

    def resolve_dir(self, data_dir: Path) -> Path:
        """The clip folder: ``dir`` itself when absolute, otherwise ``data_dir / dir``."""
        return self.dir if self.dir.is_absolute() else data_dir / self.dir
