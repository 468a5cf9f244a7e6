"""Configuration of the parking-lot plate pipeline (``plates:`` in the YAML) and its alert rule."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from vision.plates.matcher import MatcherConfig
from vision.plates.reader import ReaderConfig
from vision.plates.voting import VoterConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlateReaderSettings(_Strict):
    det_max_side: int = Field(default=480, ge=160, le=2048,
                              description="Long side (pixels) at which the text detector sees the entry zone's "
                                          "bounding box. Smaller is faster; plates must stay about 20 px tall.")
    fallback_max_side: int | None = Field(default=None, ge=160, le=2048,
                                          description="When nothing is read, look again at this size (slower; "
                                                      "for plates small in the zone). None: no second look.")
    max_candidates: int = Field(default=3, ge=1, le=10, description="Text lines recognised per frame, largest first.")
    min_score: float = Field(default=0.5, ge=0, le=1,
                             description="A read whose weakest character is less confident is dropped.")
    threads: int = Field(default=2, ge=0, le=64, description="onnxruntime threads per session (0: all cores).")
    models_dir: Path | None = Field(default=None,
                                    description="Folder holding ppocr_v4_rapidocr/ instead of the installed "
                                                "rapidocr-onnxruntime package.")

    def reader_config(self) -> ReaderConfig:
        return ReaderConfig(det_max_side=self.det_max_side, fallback_max_side=self.fallback_max_side,
                            max_candidates=self.max_candidates, min_score=self.min_score)


class PlateVoterSettings(_Strict):
    min_reads: int = Field(default=2, ge=1, le=50, description="Reads a plate track needs before a decision.")
    decide_weight: float = Field(default=2.5, ge=0, le=100,
                                 description="Summed read confidence that decides a track before it ends.")
    min_char_share: float = Field(default=0.6, ge=0, le=1,
                                  description="Each winning character's share of its position's votes.")

    def voter_config(self) -> VoterConfig:
        return VoterConfig(self.min_reads, self.decide_weight, self.min_char_share)


class PlateMatcherSettings(_Strict):
    max_distance: float = Field(default=0.5, ge=0, le=3,
                                description="Largest confusion-aware edit distance to a registered plate. 0.5: "
                                            "exact, or one confusable substitution (0/D/Q, 8/B, 1/I/7, 2/Z, 5/S, "
                                            "6/G) outside the province character.")
    confusable_cost: float = Field(default=0.5, gt=0, le=1, description="Cost of one confusable substitution.")
    min_margin: float = Field(default=0.5, ge=0, le=3,
                              description="Another person's plate must be at least this much further away; "
                                          "otherwise the read is ambiguous and raises no alert.")
    allow_province_substitution: bool = Field(default=False,
                                              description="Let the province character differ (never by default).")

    def matcher_config(self) -> MatcherConfig:
        return MatcherConfig(self.max_distance, self.confusable_cost, self.min_margin,
                             self.allow_province_substitution)


class PlatesConfig(_Strict):
    reader: PlateReaderSettings = Field(default_factory=PlateReaderSettings, description="Plate reading.")
    voter: PlateVoterSettings = Field(default_factory=PlateVoterSettings, description="Per-vehicle voting.")
    matcher: PlateMatcherSettings = Field(default_factory=PlateMatcherSettings,
                                          description="Matching against registered plates.")
    track_iou: float = Field(default=0.1, gt=0, lt=1, description="IoU to continue a plate track between frames.")
    track_max_missed_s: float = Field(default=1.5, gt=0, le=30, description="A plate unseen this long has left.")
    look_interval_s: float = Field(default=0.5, ge=0, le=60,
                                   description="On a motion-gated camera, plates are read only where something "
                                               "moves (and around a plate still being voted on), and a moving "
                                               "region with no such plate at most this often; a plate still being "
                                               "voted on is read on every frame until decided. 0: no bound.")
    driver_face: bool = Field(default=True,
                              description="On the frame that decides a VIP's plate, look for the driver's face "
                                          "and note on the card whether it matches the same person.")


class VipVehicleRuleConfig(_Strict):
    cooldown_s: float = Field(default=1800.0, ge=0, le=86400,
                              description="The same plate seen again within this many seconds gets no new alert.")
