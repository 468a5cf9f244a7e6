"""The edge box's configuration: one pydantic tree loaded from YAML, unknown keys refused."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.clips.config import ClipConfig
from edge.counter.config import CounterCameraConfig, CounterConfig
from edge.errors import ConfigError
from edge.parking.config import PlatesConfig, VipVehicleRuleConfig
from edge.redact import redact_text, redact_url
from vision.engines.base import DlibEngineConfig
from vision.engines.insightface_engine import InsightFaceEngineConfig
from vision.quality import ENROL_MAX_ABS_YAW, ENROL_MIN_BLAZEFACE_SCORE, ENROL_MIN_HOG_SCORE

DEFAULT_CONFIG_NAME = "smartbranch.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BranchConfig(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                    description="Branch id, unique in the bank.")
    name: str = Field(default="", description="Branch name shown on terminals.")
    timezone: str = Field(default="Asia/Shanghai",
                          description="IANA time zone of the branch: opening hours and hourly statistics use it.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SourceConfig(_Strict):
    url: str = Field(description="Camera source: rtsp://…, http(s)://… (MJPEG/HLS), file:PATH or a video "
                                 "path, dir:PATH for a folder of images, usb:N for a local device.")
    fps: float | None = Field(default=None, gt=0, le=120,
                              description="Pacing for files and folders (frames per second). "
                                          "None uses the file's own rate; live cameras ignore it.")
    loop: bool = Field(default=False, description="Replay a file or folder when it ends.")
    realtime: bool = Field(default=True, description="Pace files like a live camera and drop stale frames.")

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


class VoterSettings(_Strict):
    """Defaults from `smartbranch faces calibrate --target-fpir 0.001` on the East-Asian development set
    (dlib engine with flip TTA, model_id dlib_resnet_v1_flip): no stranger track of 244 was decided as a
    VIP (95 % upper bound 1.2 %), hit rate 0.351. (Without TTA it was 0.9563 and hit rate 0.30; with flip
    TTA 0.9563 lets 1 of 244 stranger tracks through.)"""

    threshold: float = Field(default=0.9585, ge=-1, le=1,
                             description="Cosine similarity a face must reach to vote for a person. The "
                                         "default was calibrated for the dlib engine with flip TTA (the "
                                         "default) on East-Asian faces (smartbranch faces calibrate "
                                         "--target-fpir 0.001); another engine or TTA needs its own.")
    min_margin: float = Field(default=0.02, ge=0, le=2, description="Lead over the runner-up person.")
    min_votes: int = Field(default=3, ge=1, le=20, description="Votes a track needs before a decision.")
    max_observations: int = Field(default=8, ge=1, le=100,
                                  description="Embeddings per track before it is settled as unknown.")


class FaceConfig(_Strict):
    @model_validator(mode="before")
    @classmethod
    def _default_engine_type(cls, data: object) -> object:
        """``type`` may be left out of ``face.engine``; it then means the default, dlib."""
        if isinstance(data, dict) and isinstance(data.get("engine"), dict) and "type" not in data["engine"]:
            return {**data, "engine": {**data["engine"], "type": "dlib"}}
        return data

    engine: Annotated[DlibEngineConfig | InsightFaceEngineConfig, Field(discriminator="type")] = Field(
        default_factory=DlibEngineConfig, description="Face engine and its settings: type dlib (the default) "
                                                      "or insightface.")
    engine_instances: int = Field(
        default=2, ge=1, le=16,
        description="Engine instances, each owned by one thread (a dlib model must never be shared between "
                    "threads). Cameras and enrolment requests send their work to whichever owner is free; two let "
                    "both cores detect at once (dlib releases the GIL). About 60 MB each.")
    voter: VoterSettings = Field(default_factory=VoterSettings, description="Open-set identity decision.")
    reembed_interval_s: float = Field(default=0.05, ge=0, le=10,
                                      description="Minimum gap between embeddings of one undecided track.")
    quality_gain: float = Field(default=0.1, ge=0, le=1,
                                description="Quality rise that makes a decided track worth re-embedding.")
    track_iou: float = Field(default=0.25, gt=0, lt=1, description="IoU to continue a face track.")
    track_max_missed_s: float = Field(default=1.5, gt=0, le=30,
                                      description="A track unseen this long has ended.")
    enrol_min_sharpness: float = Field(default=15.0, ge=0,
                                       description="Laplacian variance of the aligned 150 px chip below "
                                                   "which an enrolment photo is refused as blurred. 15 is "
                                                   "below all 138 real photos sampled from the face sets "
                                                   "(1st percentile 17.8) and above a sigma-4 Gaussian "
                                                   "blur of a sharp photo (12.8).")
    enrol_max_yaw: float = Field(default=ENROL_MAX_ABS_YAW, gt=0, le=2,
                                 description="Largest |yaw ratio| (nose offset from the eye midpoint, in eye "
                                             "distances; 0 is frontal) of an enrolment photo; a larger one is "
                                             "refused as a profile. 0.45 keeps 490 of the 491 faces of real "
                                             "enrolment-like photos (CASIA-FaceV5, RMFD crops, deepface; 99th "
                                             "percentile 0.41, python -m bench.enrol_quality).")
    enrol_min_hog_score: float = Field(default=ENROL_MIN_HOG_SCORE, ge=-1, le=5,
                                       description="Smallest HOG detection score of an enrolment face. 0.01 keeps "
                                                   "261 of 263 HOG-found real faces (1st percentile 0.017): real "
                                                   "tight crops often score low, so this only refuses the "
                                                   "weakest detections.")
    enrol_min_blazeface_score: float = Field(default=ENROL_MIN_BLAZEFACE_SCORE, gt=0, lt=1,
                                             description="Smallest BlazeFace score of an enrolment face found by "
                                                         "BlazeFace (HOG found none). 0.55 keeps 227 of 228 real "
                                                         "ones (1st percentile 0.60); the detector's floor is 0.5.")
    enrol_min_eye_aspect: float | None = Field(
        default=None, ge=0, le=1,
        description="Closed-eye check: smallest eye aspect ratio (dlib 68 points) of an enrolment face; None (the "
                    "default) does not check. The engine's 5 points (eye corners, nose) cannot tell closed eyes. "
                    "Real open eyes measured down to 0.097 (1st percentile 0.13) on tight East-Asian crops, so a "
                    "limit near 0.10 is the most that keeps 99 %, and it was not validated on closed eyes. The "
                    "68-point model's training data (iBUG 300-W) is licensed for research only.")


    @model_validator(mode="after")
    def _threshold_fits_engine(self) -> FaceConfig:
        """The default voter threshold was measured for dlib; another engine needs its own."""
        if self.engine.type != "dlib" and "threshold" not in self.voter.model_fields_set:
            raise ValueError(f"face.voter.threshold must be set for engine {self.engine.type!r}: the default "
                             "was calibrated for dlib; choose one on evaluation data "
                             "(smartbranch faces calibrate)")
        return self


class VipArrivalRuleConfig(_Strict):
    cooldown_s: float = Field(default=600.0, ge=0, le=86400,
                              description="A VIP seen again within this many seconds of last being seen is "
                                          "the same visit and gets no new alert.")


class RulesConfig(_Strict):
    vip_arrival: VipArrivalRuleConfig = Field(default_factory=VipArrivalRuleConfig,
                                              description="VIP arrival alert.")
    vip_vehicle_arrival: VipVehicleRuleConfig = Field(default_factory=VipVehicleRuleConfig,
                                                      description="VIP vehicle arrival alert (parking cameras).")


class ServerConfig(_Strict):
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to listen on; 0 picks a free port.")
    client_queue_size: int = Field(default=256, ge=1, le=100000,
                                   description="Per-terminal send queue; a terminal that falls further "
                                               "behind is closed and replays on reconnect.")
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Largest photo upload.")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024,
                                description="Largest request body of every other route (JSON bodies); a larger "
                                            "one is answered 413 as soon as it is declared or received.")
    photo_checks: int = Field(default=2, ge=1, le=16,
                              description="Uploaded photos decoded and checked for a face at once; each can take "
                                          "hundreds of MB for a 40-megapixel photo.")
    photo_check_wait_s: float = Field(default=30.0, ge=0, le=600,
                                      description="How long an upload waits for a free check before it is "
                                                  "answered 503 with Retry-After.")
    refusal_burst: int = Field(default=20, ge=1, le=10000,
                               description="Refused requests (401/403) one address may get per refusal_window_s; "
                                           "after that it is answered 429 for refusal_window_s.")
    refusal_window_s: float = Field(default=60.0, gt=0, le=3600,
                                    description="Refusals are counted over this window and written to the audit "
                                                "log as one row per address, actor, status and action.")


class TokenConfig(_Strict):
    name: str = Field(min_length=1, description="Who holds the token, e.g. lobby-tablet-1.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the token (never the token).")
    roles: list[Literal["admin", "enroller", "compliance", "lobby_manager", "branch_it"]] = Field(
        min_length=1, description="Roles granted.")
    branches: list[str] = Field(default_factory=lambda: ["*"], description="Branch ids the token may use.")


class AuthConfig(_Strict):
    tokens: list[TokenConfig] = Field(default_factory=list, description="API tokens (hashed).")


class PathsConfig(_Strict):
    data_dir: Path = Field(default=Path("var"), description="SQLite database, gallery files and photos.")


class EdgeConfig(_Strict):
    branch: BranchConfig = Field(description="The branch this box serves.")
    cameras: list[CameraConfig] = Field(default_factory=list, description="Cameras of the branch.")
    face: FaceConfig = Field(default_factory=FaceConfig, description="Face recognition.")
    plates: PlatesConfig = Field(default_factory=PlatesConfig, description="Plate recognition (parking cameras).")
    counter: CounterConfig = Field(default_factory=CounterConfig,
                                   description="Counter cameras: staff vs customer, interactions, attendance.")
    clips: ClipConfig = Field(default_factory=ClipConfig, description="Compliance clips of interactions.")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Alert rules.")
    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP server.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Tokens and roles.")
    paths: PathsConfig = Field(default_factory=PathsConfig, description="Where state is kept.")

    @model_validator(mode="after")
    def _unique_cameras(self) -> EdgeConfig:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique; repeated: {dupes}")
        return self


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_config(path: Path) -> EdgeConfig:
    """Parse and validate ``path``; relative paths inside it resolve against its folder."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {redact_text(str(exc))}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a YAML mapping at the top level")
    try:
        config = EdgeConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"config {path} is invalid: {problems}") from exc
    base = path.parent.resolve()
    data_dir = config.paths.data_dir if config.paths.data_dir.is_absolute() else base / config.paths.data_dir
    return config.model_copy(update={"paths": PathsConfig(data_dir=data_dir)})
