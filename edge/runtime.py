"""Builds and runs one branch: store, engine, gallery, hub, rules, cameras and workers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import faiss

from alerts.hub import Hub
from edge.config import CameraConfig, EdgeConfig
from edge.crypto import load_cipher
from edge.enrol import Enroller, policy_from_config
from edge.gallery_rebuild import needs_rebuild, rebuild_gallery
from edge.metrics import EdgeMetrics
from edge.parking import DriverCheck, PlatePipeline
from edge.pipeline import FacePipeline
from edge.plates import PlateRegistry
from edge.rules import Sighting, VipArrivalRule
from edge.sources import FrameSource, SourceHealth
from edge.store import Store
from edge.vehicle_rule import VehicleSighting, VipVehicleRule
from edge.worker import CameraWorker
from vision.engines.base import FaceEngine, build_engine
from vision.errors import GalleryError
from vision.gallery import Gallery
from vision.plates.ocr import PpOcr
from vision.plates.reader import PlateReader

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraStatus:
    camera_id: str
    name: str
    role: str
    health: SourceHealth
    processed: int
    errors: int


class EdgeRuntime:
    """Owns every long-lived component. Created by the CLI or by tests, never at import time."""

    def __init__(self, config: EdgeConfig, *, engine: FaceEngine | None = None) -> None:
        self.config = config
        data_dir = config.paths.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        # One query at a time is 8x faster on one OpenMP thread than on two (python -m bench.pipeline);
        # cameras already run in parallel threads.
        faiss.omp_set_num_threads(1)
        self.metrics = EdgeMetrics()
        self.store = Store(data_dir / "edge.db", branch_id=config.branch.id, cipher=load_cipher(data_dir))
        self.engine = engine if engine is not None else build_engine(config.face.engine)
        self.gallery_dir = data_dir / "gallery"
        self.gallery = self._load_gallery()
        self.hub = Hub(self.store, queue_size=config.server.client_queue_size)
        self.hub.add_listener(lambda alert: self.metrics.alerts.labels(alert.type.value).inc())
        self.vip_rule = VipArrivalRule(config.rules.vip_arrival, branch_id=config.branch.id,
                                       lookup=self.store.get_person, publish=self.hub.publish)
        self.enroller = Enroller(
            engine=self.engine, gallery=self.gallery, gallery_dir=self.gallery_dir, store=self.store,
            policy=policy_from_config(config.face, max_bytes=config.server.max_upload_bytes))
        self.plates = PlateRegistry(self.store, config.plates.matcher.matcher_config())
        self.vehicle_rule = VipVehicleRule(config.rules.vip_vehicle_arrival, branch_id=config.branch.id,
                                           lookup=self.store.get_person, publish=self.hub.publish)
        self.plate_reader: PlateReader | None = None
        self.workers: list[CameraWorker[Sighting] | CameraWorker[VehicleSighting]] = []
        for camera in config.cameras:
            if camera.enabled and camera.role == "parking":
                self.workers.append(self._parking_worker(camera))
                continue
            if not camera.enabled or camera.role not in ("entrance", "lobby"):
                if camera.enabled:
                    logger.warning("camera %s: role %s has no pipeline yet; not opened", camera.id, camera.role)
                continue
            source = FrameSource(camera.id, camera.source)
            pipeline = FacePipeline(camera, config.face, engine=self.engine, gallery=self.gallery,
                                    rule=self.vip_rule, metrics=self.metrics)
            self.workers.append(CameraWorker(source, pipeline, self.vip_rule.identified, self.metrics))
        self._started = False

    def _parking_worker(self, camera: CameraConfig) -> CameraWorker[VehicleSighting]:
        if self.plate_reader is None:  # one reader (ONNX sessions) shared by every parking camera
            settings = self.config.plates.reader
            self.plate_reader = PlateReader(PpOcr.from_pack(settings.models_dir, threads=settings.threads),
                                            settings.reader_config())
        driver = DriverCheck(self.engine, self.gallery, self.config.face.voter.threshold)
        pipeline = PlatePipeline(camera, self.config.plates, reader=self.plate_reader, registry=self.plates,
                                 rule=self.vehicle_rule, driver=driver, metrics=self.metrics)
        return CameraWorker(FrameSource(camera.id, camera.source), pipeline, self.vehicle_rule.decided, self.metrics)

    def _load_gallery(self) -> Gallery:
        """The saved gallery of this engine's model, rebuilt from the enrolment photos when it is stale."""
        try:
            gallery = Gallery.load(self.gallery_dir, self.engine.model_id, self.engine.dim)
        except GalleryError as exc:
            logger.warning("gallery unusable (%s); rebuilding from the enrolment photos", exc)
        else:
            if not needs_rebuild(self.store, gallery):
                return gallery
        gallery, _ = rebuild_gallery(store=self.store, engine=self.engine, gallery_dir=self.gallery_dir)
        return gallery

    @property
    def data_dir(self) -> Path:
        return self.config.paths.data_dir

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for worker in self.workers:
            worker.source.start()
            worker.start()
        logger.info("edge %s started with %s camera(s)", self.config.branch.id, len(self.workers))

    def stop(self) -> None:
        for worker in self.workers:
            worker.source.stop()
        for worker in self.workers:
            worker.stop()
        self.store.engine.dispose()

    @property
    def cameras_done(self) -> bool:
        """Every camera's source has ended and its worker has drained (file/folder sources)."""
        return bool(self.workers) and all(w.source.finished and w.done for w in self.workers)

    def camera_status(self) -> list[CameraStatus]:
        out = []
        for worker in self.workers:
            cam = worker.pipeline.camera
            health = worker.source.health()
            self.metrics.camera_up.labels(cam.id).set(1 if health.state == "ok" else 0)
            self.metrics.camera_reconnects.labels(cam.id).set(health.reconnects)
            out.append(CameraStatus(cam.id, cam.display_name, cam.role, health, worker.processed, worker.errors))
        return out
