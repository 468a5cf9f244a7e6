"""Configuration of the sync with the central console (``sync:`` in the YAML).

No sync runs without ``console_url``. The edge's token is never in the YAML: ``smartbranch edge register`` writes
it, encrypted with the data key, to ``<data_dir>/console.token`` (:mod:`edge.sync.credentials`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(_Strict):
    host: str = Field(min_length=1, description="MQTT broker host; it only announces new gallery versions.")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port.")
    topic_prefix: str = Field(default="smartbranch", min_length=1,
                              description="Topics are <prefix>/gallery/<branch code>, as the console publishes.")


class SyncConfig(_Strict):
    console_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$",
                                    description="The central console's base URL (http or https); no sync without it. "
                                                "Written by `smartbranch edge register`.")
    long_poll_s: float = Field(default=25.0, ge=0, le=30,
                               description="How long the console may hold a gallery request open when nothing "
                                           "changed (the console caps it at 30 s).")
    status_interval_s: float = Field(default=30.0, ge=1, le=3600,
                                     description="The edge reports its gallery version and camera health this often "
                                                 "(and after every applied change).")
    request_timeout_s: float = Field(default=15.0, ge=1, le=300,
                                     description="Timeout of one request to the console, beyond the long-poll wait.")
    page_limit: int = Field(default=200, ge=1, le=500, description="Persons per gallery answer.")
    revoked_retry_s: float = Field(default=300.0, ge=1, le=86400,
                                   description="After the console refuses the token (revoked), wait this long "
                                               "before trying again.")
    mqtt: MqttConfig | None = Field(default=None,
                                    description="Optional broker: a new version announced there wakes the puller at "
                                                "once; without it the long-poll alone serves.")
    clip_upload_kbps: int = Field(default=512, ge=1, le=1_000_000,
                                  description="Bandwidth cap of the background clip upload to the console (kbit/s).")

    @property
    def enabled(self) -> bool:
        return self.console_url is not None
