"""Configuration of counter cameras: per camera (``cameras[].counter``) and branch-wide (``counter:``)."""

from __future__ import annotations

from datetime import datetime, time

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from calibration.errors import CalibrationError
from calibration.homography import FloorHomography
from calibration.zones import PolygonZone
from vision.attendance import CounterMonitor, WaitingMonitor
from vision.cadence import CadenceConfig
from vision.engines.nanodet import NanoDetConfig
from vision.face_cadence import FaceCadenceConfig
from vision.interaction import InteractionPolicy
from vision.roles import RolePolicy, RoleRule

Point = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneConfig(_Strict):
    name: str = Field(min_length=1, max_length=64, description="Zone name shown on cards, e.g. 等候区A or 1号柜台.")
    points: list[Point] = Field(min_length=3, description="Polygon vertices in image pixels (at least three).")

    @model_validator(mode="after")
    def _valid_polygon(self) -> ZoneConfig:
        try:
            self.zone()
        except CalibrationError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def zone(self) -> PolygonZone:
        return PolygonZone(self.name, tuple(self.points))


class FloorCalibration(_Strict):
    """Image-to-floor homography from at least four marked floor points (e.g. tape marks at known positions)."""

    image_points: list[Point] = Field(min_length=4, description="Pixels of the floor marks in the camera image.")
    floor_points: list[Point] = Field(min_length=4, description="The same marks on the floor, in metres.")
    max_error_m: float = Field(default=0.25, gt=0, le=5, description="Largest reprojection error accepted.")

    @model_validator(mode="after")
    def _fits(self) -> FloorCalibration:
        try:
            self.homography()
        except CalibrationError as exc:
            raise ValueError(f"floor calibration: {exc}") from exc
        return self

    def homography(self) -> FloorHomography:
        return FloorHomography.from_points(self.image_points, self.floor_points, self.max_error_m)


class CounterCameraConfig(_Strict):
    """What one counter camera sees: the staff-only area, waiting areas, counters and the floor."""

    staff_zone: list[Point] | None = Field(
        default=None, description="Staff-only polygon (image pixels), e.g. behind the counter. A person whose feet "
                                  "stay inside for counter.zone_dwell_s is staff even when the face is unseen.")
    waiting_zones: list[ZoneConfig] = Field(default_factory=list,
                                            description="Where customers wait; used by customer_unattended.")
    counter_zones: list[ZoneConfig] = Field(default_factory=list,
                                            description="Counter positions that should be staffed during opening "
                                                        "hours; used by counter_unstaffed.")
    floor: FloorCalibration | None = Field(default=None,
                                           description="Floor homography; without it distances use the head-size "
                                                       "proxy (about ±30 %).")

    @field_validator("staff_zone")
    @classmethod
    def _staff_polygon(cls, value: list[Point] | None) -> list[Point] | None:
        if value is not None:
            try:
                PolygonZone("staff_zone", tuple(value))
            except CalibrationError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> CounterCameraConfig:
        names = [z.name for z in self.waiting_zones + self.counter_zones]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"zone names must be unique on a camera; repeated: {dupes}")
        return self


class OpeningPeriod(_Strict):
    days: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7],
                            description="ISO weekdays (1 = Monday … 7 = Sunday).")
    open: time = Field(default=time(9, 0), description="Opening time, branch local (HH:MM).")
    close: time = Field(default=time(17, 0), description="Closing time, branch local (HH:MM).")

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if not value or any(d not in range(1, 8) for d in value):
            raise ValueError(f"days must be ISO weekdays 1..7, got {value}")
        return value

    @model_validator(mode="after")
    def _order(self) -> OpeningPeriod:
        if self.close <= self.open:
            raise ValueError(f"close {self.close} must be after open {self.open}")
        return self


class InteractionSettings(_Strict):
    max_distance_m: float = Field(default=1.5, gt=0, le=10, description="Staff and customer closer than this are near.")
    release_ratio: float = Field(default=1.3, ge=1, le=3,
                                 description="Hysteresis: a near pair stays near until max_distance_m × this.")
    start_after_s: float = Field(default=3.0, ge=0, le=600, description="Near this long starts an interaction.")
    end_after_s: float = Field(default=5.0, ge=0, le=600,
                               description="Apart (or one unseen) this long ends it; shorter gaps are bridged.")
    focal_px: float | None = Field(default=None, gt=0,
                                   description="Focal length in pixels for the head-size proxy; None: image "
                                               "width / 2 (a 90° horizontal view).")

    def policy(self) -> InteractionPolicy:
        return InteractionPolicy(max_distance_m=self.max_distance_m, release_ratio=self.release_ratio,
                                 start_after_s=self.start_after_s, end_after_s=self.end_after_s,
                                 focal_px=self.focal_px)


class CounterConfig(_Strict):
    """Branch-wide settings of every counter camera."""

    role_order: list[RoleRule] = Field(
        default_factory=lambda: list[RoleRule](["gallery", "zone"]),
        description="Order of the staff rules: gallery (a face matched to enrolled staff) and zone (feet in the "
                    "staff zone). The first that decides wins; nobody decided is a customer.")
    zone_dwell_s: float = Field(default=2.0, ge=0, le=600, description="Time in the staff zone that makes staff.")
    interaction: InteractionSettings = Field(default_factory=InteractionSettings, description="Service episodes.")
    unattended_after_s: float = Field(default=120.0, gt=0, le=7200,
                                      description="A customer waiting this long with no interaction is unattended.")
    unattended_grace_s: float = Field(default=3.0, ge=0, le=120,
                                      description="A shorter exit from the waiting zone does not restart the wait.")
    unstaffed_after_s: float = Field(default=300.0, gt=0, le=7200,
                                     description="A counter zone without staff this long in opening hours alerts.")
    opening_hours: list[OpeningPeriod] = Field(default_factory=lambda: [OpeningPeriod()],
                                               description="When counters must be staffed (branch time zone).")
    person: NanoDetConfig = Field(default_factory=NanoDetConfig, description="Person detector (NanoDet).")
    person_cadence: CadenceConfig = Field(
        default_factory=CadenceConfig,
        description="On a motion-gated camera, when the person detector runs: each refresh, at once when something "
                    "moves outside the people it found, every N-th frame of motion inside them; the people it found "
                    "are carried over between (vision.cadence). Without motion gating it runs on every frame.")
    face_cadence: FaceCadenceConfig = Field(
        default_factory=FaceCadenceConfig,
        description="On a motion-gated camera, faces are looked for while someone in view has no settled identity, "
                    "and every interval_s otherwise; each person keeps their face box between (vision.face_cadence).")
    face_every: int = Field(default=1, ge=1, le=30,
                            description="Run face detection on every N-th frame (persons run on every frame); "
                                        "raise it when a counter camera cannot keep up.")
    head_fraction: float = Field(default=0.4, gt=0, le=1,
                                 description="A face belongs to a person when inside the top fraction of the box.")

    def role_policy(self, camera: CounterCameraConfig | None) -> RolePolicy:
        staff = camera.staff_zone if camera is not None else None
        return RolePolicy(order=tuple(self.role_order), zone_dwell_s=self.zone_dwell_s,
                          staff_zone=PolygonZone("staff_zone", tuple(staff)) if staff else None)

    def waiting_monitor(self, camera: CounterCameraConfig | None) -> WaitingMonitor:
        zones = [z.zone() for z in camera.waiting_zones] if camera is not None else []
        return WaitingMonitor(zones, self.unattended_after_s, self.unattended_grace_s)

    def counter_monitor(self, camera: CounterCameraConfig | None) -> CounterMonitor:
        zones = [z.zone() for z in camera.counter_zones] if camera is not None else []
        return CounterMonitor(zones, self.unstaffed_after_s)

    def is_open(self, local: datetime) -> bool:
        """Whether ``local`` (branch-local, aware or naive) falls in an opening period."""
        now = local.time()
        return any(local.isoweekday() in p.days and p.open <= now < p.close for p in self.opening_hours)

    @field_validator("role_order")
    @classmethod
    def _order(cls, value: list[RoleRule]) -> list[RoleRule]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"role_order must list gallery and/or zone once each, got {value}")
        return value
