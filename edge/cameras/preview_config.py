"""The live preview's config section: how often, how large and for how many viewers a camera is shown.

The preview is drawn and encoded in the viewer's request thread, never in the camera's worker; these
limits keep what it takes from the box's cores small enough not to slow the pipelines.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LivePreviewConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_fps: float = Field(default=5.0, gt=0, le=15, description="Most frames per second a preview stream sends; "
                                                                 "a viewer asking for more gets this many.")
    max_width: int = Field(default=960, ge=160, le=3840,
                           description="Preview frames wider than this are scaled down before encoding.")
    jpeg_quality: int = Field(default=75, ge=30, le=95, description="JPEG quality of preview frames.")
    max_viewers: int = Field(default=4, ge=1, le=32,
                             description="Preview streams open at once on the whole box; one more is refused "
                                         "with 503 rather than taking more of the cores.")
