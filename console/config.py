"""The console's config file (``console.yaml``): database, data folder, server, sign-in rules and face checks.

Every section is strict (an unknown key is an error naming it) and every field has a default, so an empty
file is a working single-site console on SQLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vision.engines.base import DlibEngineConfig
from vision.engines.insightface_engine import InsightFaceEngineConfig
from vision.enrolment import EnrolmentPolicy
from vision.quality import ENROL_MAX_ABS_YAW, ENROL_MIN_BLAZEFACE_SCORE, ENROL_MIN_HOG_SCORE

DEFAULT_DATA_DIR = Path("var/console")


class ConsoleConfigError(ValueError):
    """The config file is missing, unreadable or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseConfig(_Strict):
    url: str = Field(default="", description="SQLAlchemy URL: postgresql+psycopg://user@host/db in production; "
                                             "empty: SQLite at data_dir/console.db (the embedded default).")
    pool_size: int = Field(default=10, ge=1, le=200, description="Connections kept per console replica "
                                                                 "(PostgreSQL).")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if url and not url.startswith(("sqlite:", "sqlite+pysqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("database.url must be a sqlite:/// or postgresql+psycopg:// URL")
        if url.startswith("postgresql://"):
            return "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)
    secure_cookies: bool = Field(default=False, description="Mark the session cookie Secure (behind TLS).")
    workers: int = Field(default=1, ge=1, le=32,
                         description="Console processes serving this port (uvicorn workers). Each is a replica of "
                                     "its own, as behind a load balancer: it keeps only caches, so 2 on a 2-core "
                                     "box let requests use both cores.")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1", description="Addresses of load balancers whose X-Forwarded-For is trusted (comma "
                                         "separated, '*' for any): the sign-in limit per address needs the client's "
                                         "real address, not the balancer's.")


class AuthConfig(_Strict):
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="A web sign-in lasts this long.")
    max_failures: int = Field(default=5, ge=1, le=100,
                              description="Failed sign-ins allowed per user name in failure_window_s; "
                                          "the next one is refused and the name is locked for lockout_s.")
    max_address_failures: int = Field(default=20, ge=1, le=10000,
                                      description="Failed sign-ins allowed from one client address over all names "
                                                  "in failure_window_s (many users may share a proxy's address).")
    failure_window_s: float = Field(default=60.0, gt=0, le=86400)
    lockout_s: float = Field(default=300.0, ge=0, le=86400)


class MqttConfig(_Strict):
    host: str = Field(description="The MQTT broker (Mosquitto) that announces new gallery versions to the edges.")
    port: int = Field(default=1883, ge=1, le=65535)
    topic_prefix: str = Field(default="smartbranch", min_length=1, max_length=64,
                              description="Messages go to <prefix>/gallery/<branch code>, retained, QoS 1.")


class SyncConfig(_Strict):
    long_poll_max_s: float = Field(default=30.0, ge=0, le=120,
                                   description="The longest an edge's gallery long-poll is held (its wait is capped).")
    mqtt: MqttConfig | None = Field(default=None, description="Optional push: without it the long-poll alone serves.")
    register_max_failures: int = Field(default=10, ge=1, le=10000,
                                       description="Failed edge registrations allowed per client address in "
                                                   "register_window_s; more are refused with 429 (codes are short).")
    register_window_s: float = Field(default=600.0, gt=0, le=86400)
    page_max_mb: float = Field(default=32.0, gt=0, le=512,
                               description="A gallery page stops adding persons once its photos pass this size.")


class FaceSettings(_Strict):
    engine: Annotated[DlibEngineConfig | InsightFaceEngineConfig, Field(discriminator="type")] = Field(
        default_factory=DlibEngineConfig, description="Face engine: type dlib (the default) or insightface.")
    engine_instances: int = Field(default=2, ge=1, le=16,
                                  description="Engine instances, each owned by one thread (about 60 MB each).")
    duplicate_threshold: float = Field(
        default=0.9585, ge=-1, le=1,
        description="A face at least this similar to an enrolled person is that person (409). The edge voter's "
                    "calibrated threshold for the dlib engine with flip TTA; another engine needs its own.")
    min_sharpness: float = Field(default=15.0, ge=0, description="The edge's enrolment blur gate.")
    max_yaw: float = Field(default=ENROL_MAX_ABS_YAW, gt=0, le=2)
    min_hog_score: float = Field(default=ENROL_MIN_HOG_SCORE, ge=-1, le=5)
    min_blazeface_score: float = Field(default=ENROL_MIN_BLAZEFACE_SCORE, gt=0, lt=1)
    max_photo_mb: float = Field(default=10.0, gt=0, le=50)

    def policy(self) -> EnrolmentPolicy:
        """The same gates as the edge's enrolment (vision.enrolment), with this console's limits."""
        return EnrolmentPolicy(min_face_px=self.engine.min_face_px, min_sharpness=self.min_sharpness,
                               duplicate_threshold=self.duplicate_threshold, max_abs_yaw=self.max_yaw,
                               min_hog_score=self.min_hog_score, min_blazeface_score=self.min_blazeface_score,
                               max_bytes=int(self.max_photo_mb * 1024 * 1024))


class ConsoleConfig(_Strict):
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Key file, encrypted photos, SQLite database.")
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    face: FaceSettings = Field(default_factory=FaceSettings)
    sync: SyncConfig = Field(default_factory=SyncConfig)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.data_dir / 'console.db').as_posix()}"


def load_console_config(path: Path | None) -> ConsoleConfig:
    """The config in ``path`` (None: every default); :class:`ConsoleConfigError` naming what is wrong."""
    if path is None:
        return ConsoleConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConsoleConfigError(f"{path}: cannot be read ({exc})") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConsoleConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConsoleConfigError(f"{path}: the top level must be a mapping of sections")
    try:
        return ConsoleConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConsoleConfigError(f"{path}: {problems}") from exc
