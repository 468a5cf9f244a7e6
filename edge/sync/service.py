"""The sync as one part of the running box: the applier, the puller and the optional MQTT waker, built from the
config's ``sync`` section and the token file, started and stopped by the runtime, and its health for ``/healthz``.

A box with ``sync.console_url`` but no token file (never registered, or the file was removed) still starts: the
gallery it has keeps serving, and the health says what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from edge.faces.enrol import Enroller
from edge.parking.registry import PlateRegistry
from edge.store.db import Store
from edge.sync.apply import GalleryApplier
from edge.sync.client import ConsoleClient
from edge.sync.config import SyncConfig
from edge.sync.credentials import Credentials, CredentialsError, read_credentials, token_path
from edge.sync.mqtt import MqttWaker
from edge.sync.puller import SyncPuller
from vision.engines.base import FaceEngine
from vision.gallery import Gallery

logger = logging.getLogger(__name__)


def software_version() -> str:
    try:
        return f"smartbranch {version('smartbranch')}"
    except PackageNotFoundError:
        return "smartbranch dev"


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What ``/healthz`` shows of the sync."""

    state: str  # not_registered | starting | ok | retrying | revoked | error
    console_url: str | None
    branch: str | None
    version: int
    error: str | None
    last_ok_at: Any
    mqtt_connected: bool | None


class SyncService:
    def __init__(self, config: SyncConfig, *, data_dir: Path, store: Store, cipher: Fernet, gallery: Gallery,
                 engine: FaceEngine, enroller: Enroller, plates: PlateRegistry,
                 cameras: Callable[[], list[dict[str, Any]]]) -> None:
        self.config = config
        self.applier = GalleryApplier(store=store, data_dir=data_dir, gallery=gallery, engine=engine,
                                      enroller=enroller, plates=plates)
        self.credentials: Credentials | None = None
        self.problem: str | None = None
        self.puller: SyncPuller | None = None
        self.waker: MqttWaker | None = None
        try:
            self.credentials = read_credentials(data_dir, cipher)
        except CredentialsError as exc:
            self.problem = str(exc)
        if self.credentials is None:
            self.problem = self.problem or (f"no console token ({token_path(data_dir)}): register this box with "
                                            "`smartbranch edge register --config ... --console URL --code CODE`")
            logger.error("sync: %s; the box runs on the gallery it has", self.problem)
            return
        assert config.console_url is not None
        client = ConsoleClient(config.console_url, self.credentials.token, timeout_s=config.request_timeout_s)
        self.puller = SyncPuller(client=client, applier=self.applier, config=config, model_id=engine.model_id,
                                 software=software_version(), cameras=cameras)
        if config.mqtt is not None:
            self.waker = MqttWaker(config.mqtt, self.credentials.branch_code, self.puller.wake)

    def start(self, *, catch_up: bool = True) -> None:
        """Clean what a killed apply left, catch up with the console (before the cameras start), then keep pulling."""
        self.applier.clean_orphans()
        if self.puller is not None:
            if catch_up:
                self.puller.catch_up()
            self.puller.start()
        if self.waker is not None:
            self.waker.start()

    def stop(self) -> None:
        if self.waker is not None:
            self.waker.stop()
        if self.puller is not None:
            self.puller.stop()

    def status(self) -> SyncStatus:
        branch = self.credentials.branch_code if self.credentials is not None else None
        mqtt = self.waker.connected if self.waker is not None else None
        if self.puller is None:
            return SyncStatus("not_registered", self.config.console_url, branch, self.applier.version, self.problem,
                              None, mqtt)
        health = self.puller.health
        return SyncStatus(health.state, self.config.console_url, branch, health.version, health.error,
                          health.last_ok_at, mqtt)
