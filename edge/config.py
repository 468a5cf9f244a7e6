"""The edge box's configuration: one pydantic tree loaded from YAML, unknown keys refused."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.cameras.config import CameraConfig
from edge.cameras.preview_config import LivePreviewConfig
from edge.cameras.scheduler import SchedulerConfig
from edge.clips.config import ClipConfig
from edge.counter.config import CounterConfig
from edge.errors import ConfigError
from edge.faces.config import FaceConfig, VipArrivalRuleConfig
from edge.parking.config import PlatesConfig, VipVehicleRuleConfig
from edge.redact import redact_text
from edge.sync.config import SyncConfig

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
    terminal_heartbeat_s: float = Field(default=2.0, ge=0.2, le=60,
                                        description="The terminal WebSocket is pinged this often; a tablet that "
                                                    "hears nothing for three intervals shows itself disconnected "
                                                    "and reconnects, and the box closes a tablet silent that long.")
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
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig,
                                       description="How the cameras share the cores: priorities, budgets, slots.")
    face: FaceConfig = Field(default_factory=FaceConfig, description="Face recognition.")
    plates: PlatesConfig = Field(default_factory=PlatesConfig, description="Plate recognition (parking cameras).")
    counter: CounterConfig = Field(default_factory=CounterConfig,
                                   description="Counter cameras: staff vs customer, interactions, attendance.")
    clips: ClipConfig = Field(default_factory=ClipConfig, description="Compliance clips of interactions.")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Alert rules.")
    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP server.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Tokens and roles.")
    paths: PathsConfig = Field(default_factory=PathsConfig, description="Where state is kept.")
    sync: SyncConfig = Field(default_factory=SyncConfig,
                             description="Sync with the central console (gallery down, status up).")
    preview: LivePreviewConfig = Field(default_factory=LivePreviewConfig,
                                       description="Live camera previews (rate, size, viewers).")

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
