"""Builds and runs one branch: store, engine, gallery, hub, rules, cameras and workers."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import faiss

from alerts.hub import Hub
from calibration.errors import CalibrationError
from edge.cameras.config import CameraConfig
from edge.cameras.scheduler import FrameScheduler
from edge.cameras.sources import FrameSource, SourceHealth
from edge.cameras.worker import CameraWorker
from edge.clips.recorder import ClipRecorder
from edge.clips.recovery import recover_clips
from edge.clips.retention import RetentionJob
from edge.config import EdgeConfig
from edge.counter.pipeline import CounterEvent, CounterPipeline
from edge.counter.rules import CounterRule
from edge.faces.adapt import PopulationAdapter
from edge.faces.enrol import Enroller, policy_from_config
from edge.faces.gallery_rebuild import needs_rebuild, rebuild_gallery
from edge.faces.pipeline import FacePipeline
from edge.faces.stranger_crops import StrangerCrops
from edge.faces.vip_rule import Sighting, VipArrivalRule
from edge.faces.visit_shots import VisitShots
from edge.metrics import EdgeMetrics
from edge.parking.pipeline import DriverCheck, PlatePipeline
from edge.parking.registry import PlateRegistry
from edge.parking.vehicle_rule import VehicleSighting, VipVehicleRule
from edge.review.store import ReviewStore
from edge.store.datadir import open_data_folder
from edge.sync.client import ConsoleClient
from edge.sync.outbox import UNREGISTERED_KEEP, Outbox
from edge.sync.population import region_prior_fetcher
from edge.sync.sender import Sender, SenderConfig
from edge.sync.service import SyncService
from models.errors import ModelPackError
from vault.clip_file import CLIP_KEY_PURPOSE
from vision.engines.base import FaceEngine
from vision.engines.nanodet import NanoDetPersonDetector
from vision.engines.owner import EnginePool, EnginePoolConfig
from vision.engines.registry import build_camera_engine, build_engine
from vision.gallery import Gallery
from vision.plates.ocr import PpOcr
from vision.plates.reader import PlateReader

logger = logging.getLogger(__name__)

AnyWorker = CameraWorker[Sighting] | CameraWorker[VehicleSighting] | CameraWorker[CounterEvent]


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
        # the same for OpenCV's own pool (scheduler.opencv_threads): its idle workers wait by spinning
        if config.scheduler.opencv_threads:
            cv2.setNumThreads(config.scheduler.opencv_threads)
        self.metrics = EdgeMetrics()
        # the cameras share the cores by priority and budget (edge.cameras.scheduler)
        self.scheduler = FrameScheduler(config.scheduler) if config.scheduler.enabled else None
        # refuses a folder whose key or parts disagree (edge.store.datadir) before anything is written to it
        self.data = open_data_folder(data_dir, branch_id=config.branch.id,
                                     clips_dir=config.clips.resolve_dir(data_dir))
        self._owns_engine = False
        try:
            self._assemble(config, engine, data_dir)
        except BaseException:
            self._abandon()
            raise

    def _assemble(self, config: EdgeConfig, engine: FaceEngine | None, data_dir: Path) -> None:
        """Every component on top of the opened data folder; cameras are built but not started."""
        self.store = self.data.store
        self.review = ReviewStore(self.store)
        self.clip_key = self.data.key.derive(CLIP_KEY_PURPOSE)  # clips are encrypted at rest (vault.clip_file)
        # before any camera runs: salvage clips and close interactions that a killed process left open
        recover_clips(self.review, config.clips.resolve_dir(data_dir), self.clip_key)
        self.engine, self._owns_engine = self._engine_pool(config, engine)
        # the cameras find faces with face.detector; enrolment and rebuilds keep the engine's own detector
        self.camera_engine = build_camera_engine(self.engine, config.face.detector, config.face.blazeface)
        self.gallery_dir = self.data.gallery_dir  # gallery/, or the version folder a console sync wrote
        self.gallery = self._load_gallery()
        # entrance and lobby cameras search through it: it learns the branch's face population (aggregates only)
        self.adaptation = PopulationAdapter(config.face.adaptation, gallery=self.gallery, store=self.store,
                                            threshold=config.face.voter.threshold)
        self.hub = Hub(self.store, queue_size=config.server.client_queue_size)
        self.hub.add_listener(lambda alert: self.metrics.alerts.labels(alert.type.value).inc())
        self.vip_rule = VipArrivalRule(config.rules.vip_arrival, branch_id=config.branch.id,
                                       lookup=self.store.get_person, publish=self.hub.publish)
        self.enroller = Enroller(
            engine=self.engine, gallery=self.gallery, gallery_dir=self.gallery_dir, store=self.store,
            policy=policy_from_config(config.face, max_bytes=config.server.max_upload_bytes))
        self.plates = PlateRegistry(self.store, config.plates.matcher.matcher_config())
        # a confirmed VIP visit (the manager's ack) may lend its best shot to the VIP's template
        self.visit_shots = VisitShots(
            config.face.visit_shots, store=self.store, gallery=self.gallery, engine=self.engine, enroller=self.enroller,
            policy=policy_from_config(config.face), threshold=config.face.voter.threshold, search=self.adaptation,
            audit=lambda actor, action, outcome, detail: self.review.audit(
                actor=actor, action=action, clip_id=None, outcome=outcome, detail=detail))
        # opt-in: unknown tracks' best crops, kept briefly (encrypted) for a manager's "this was X"
        self.stranger_crops = StrangerCrops(config.face.stranger_crops, store=self.store,
                                            policy=policy_from_config(config.face))
        self.vip_rule.add_listener(self.visit_shots.offer)
        self.hub.add_ack_listener(self.visit_shots.on_ack)
        self.sync: SyncService | None = None  # with sync.console_url: the console's gallery, applied atomically
        if config.sync.enabled:
            self.sync = SyncService(config.sync, data_dir=data_dir, store=self.store, cipher=self.data.key.fernet,
                                    gallery=self.gallery, engine=self.engine, enroller=self.enroller,
                                    plates=self.plates, cameras=self.camera_report)
            self.sync.applier.add_scrub_listener(self._refresh_alerts)  # an erasure's scrubbed cards, pushed again
            self.sync.applier.set_refine(self.visit_shots.with_shots)  # a console update keeps the visit shots
        self.sender: Sender | None = None  # with a console token: the outbox's events and the clips go up
        if self.sync is not None and self.sync.credentials is not None and config.sync.console_url:
            token = self.sync.credentials.token
            self.sender = Sender(SenderConfig(config.sync.console_url, clip_upload_kbps=config.sync.clip_upload_kbps,
                                              request_timeout_s=config.sync.request_timeout_s),
                                 store=self.store, review=self.review, token=lambda: token, clip_key=self.clip_key,
                                 tz=config.branch.tz, cameras=self.camera_report)
            if config.face.adaptation.region_prior:  # a new branch starts from its region's faces (aggregates)
                self.adaptation.attach_region_prior(region_prior_fetcher(
                    ConsoleClient(config.sync.console_url, token, timeout_s=config.sync.request_timeout_s),
                    self.adaptation.model_id))
        self._frames_seen: dict[str, tuple[int, float]] = {}  # camera id -> (frames, monotonic time) at last report
        self.vehicle_rule = VipVehicleRule(config.rules.vip_vehicle_arrival, branch_id=config.branch.id,
                                           lookup=self.store.get_person, publish=self.hub.publish)
        self.plate_reader: PlateReader | None = None
        self.workers: list[AnyWorker] = []
        self.counter_rule = CounterRule(branch_id=config.branch.id, lookup=self.store.get_person,
                                        publish=self.hub.publish, log=self.review, snapshots=self.store)
        self.person_detector: NanoDetPersonDetector | None = None
        self.not_opened: dict[str, str] = {}  # camera id -> why it could not be opened
        self._roles: dict[str, str] = {}  # person id -> enrolled role, for the counter pipelines
        self.retention = RetentionJob(self.review, retention_days=config.clips.retention_days,
                                      clips_dir=config.clips.resolve_dir(data_dir),
                                      snapshots=self.store.delete_snapshots,
                                      snapshot_days=config.clips.snapshot_retention_days)
        self.recorders: list[ClipRecorder] = []
        for camera in config.cameras:
            worker = self._camera_worker(camera)
            if worker is not None:
                self.workers.append(worker)
        self._started = False
        self._apply_lock = threading.Lock()

    def _camera_worker(self, camera: CameraConfig) -> AnyWorker | None:
        """The worker of one camera (not started); None when it is disabled or cannot be opened."""
        if not camera.enabled:
            return None
        if camera.role == "parking":
            return self._parking_worker(camera)
        if camera.role == "counter":
            return self._counter_worker(camera)
        source = FrameSource(camera.id, camera.source)
        pipeline = FacePipeline(camera, self.config.face, engine=self.camera_engine, gallery=self.adaptation,
                                rule=self.vip_rule, metrics=self.metrics,
                                strangers=self.stranger_crops.keep if self.stranger_crops.enabled else None)
        return CameraWorker(source, pipeline, self.vip_rule.identified, self.metrics,
                            scheduler=self._share(camera))

    def apply_cameras(self, config: EdgeConfig) -> list[str]:
        """Take ``config``'s cameras without a restart; returns the ids of the cameras that changed.

        A camera whose settings changed gets a new worker (the old one is stopped first, its clip recorder
        closed); a removed or disabled camera is stopped; a new one is built, and started when the runtime
        runs. The other cameras keep their workers. Only the cameras section takes effect here.
        """
        with self._apply_lock:
            old = {c.id: c for c in self.config.cameras}
            new = {c.id: c for c in config.cameras}
            changed = [i for i in dict.fromkeys([*old, *new]) if old.get(i) != new.get(i)]
            self.config = self.config.model_copy(update={"cameras": config.cameras})
            for camera_id in changed:
                self._stop_camera(camera_id)
                camera = new.get(camera_id)
                try:
                    worker = self._camera_worker(camera) if camera is not None else None
                except (CalibrationError, ValueError) as exc:  # a bad zone or lens must not take the service down
                    logger.error("camera %s: not opened after the change: %s", camera_id, exc)
                    self.not_opened[camera_id] = f"settings not usable: {exc}"
                    continue
                if worker is None:
                    continue
                self.workers = [*self.workers, worker]  # a new list: readers never see it half-changed
                if self._started:
                    worker.source.start()
                    worker.start()
                logger.info("camera %s applied without a restart", camera_id)
            return changed

    def _stop_camera(self, camera_id: str) -> None:
        self.not_opened.pop(camera_id, None)
        gone = [w for w in self.workers if w.pipeline.camera.id == camera_id]
        self.workers = [w for w in self.workers if w.pipeline.camera.id != camera_id]
        for worker in gone:
            worker.source.stop()
            worker.stop()
            if not worker.close_pipeline():  # open services end now, not at the next restart
                logger.warning("camera %s: the old pipeline did not stop in time; its open tracks stay open",
                               camera_id)
        for recorder in [r for r in self.recorders if r.camera_id == camera_id]:
            recorder.close()
            self.recorders.remove(recorder)

    def _abandon(self) -> None:
        """Undo a runtime whose assembly failed: its engine owners stop and the data folder's lock is released
        (no camera or job had started yet)."""
        engine = getattr(self, "engine", None)
        if self._owns_engine and isinstance(engine, EnginePool):
            engine.close()
        self.data.close()

    @staticmethod
    def _engine_pool(config: EdgeConfig, engine: FaceEngine | None) -> tuple[EnginePool, bool]:
        """Every native face model is reached through a pool whose owner threads alone use it
        (:mod:`vision.engines.owner`); returns the pool and whether this runtime closes it.

        ``engine``: an :class:`EnginePool` is shared as it is (its creator closes it); a bare engine is adopted,
        and from then on only the pool's owner thread may use it; None builds ``face.engine_instances``
        engines from the config.
        """
        if isinstance(engine, EnginePool):
            return engine, False
        if engine is not None:
            return EnginePool.adopt(engine), True
        settings = config.face.engine
        pool = EnginePool(lambda: build_engine(settings),
                          EnginePoolConfig(instances=config.face.engine_instances, name="face-engine"))
        return pool, True

    def _parking_worker(self, camera: CameraConfig) -> CameraWorker[VehicleSighting]:
        if self.plate_reader is None:  # one reader (ONNX sessions) shared by every parking camera
            settings = self.config.plates.reader
            self.plate_reader = PlateReader(PpOcr.from_pack(settings.models_dir, threads=settings.threads),
                                            settings.reader_config())
        driver = DriverCheck(self.engine, self.gallery, self.config.face.voter.threshold)
        pipeline = PlatePipeline(camera, self.config.plates, reader=self.plate_reader, registry=self.plates,
                                 rule=self.vehicle_rule, driver=driver, metrics=self.metrics)
        return CameraWorker(FrameSource(camera.id, camera.source), pipeline, self.vehicle_rule.decided, self.metrics,
                            scheduler=self._share(camera))

    def _counter_worker(self, camera: CameraConfig) -> CameraWorker[CounterEvent] | None:
        if self.person_detector is None:  # one detector (ONNX session) shared by every counter camera
            try:
                self.person_detector = NanoDetPersonDetector(self.config.counter.person)
            except ModelPackError as exc:
                logger.error("camera %s: counter camera not opened, the person detector is missing: %s",
                             camera.id, exc)
                self.not_opened[camera.id] = f"person detector missing: {exc}"
                return None
        recorder = None
        if self.config.clips.enabled:
            recorder = ClipRecorder(camera.id, self.config.clips, self.config.clips.resolve_dir(self.data_dir),
                                    on_written=self.review.add_clip, key=self.clip_key,
                                    ring_s=self.config.clips.pre_roll_s + self.config.counter.interaction.start_after_s,
                                    tz=self.config.branch.tz)
            self.recorders.append(recorder)
        pipeline = CounterPipeline(camera, self.config.counter, self.config.face, persons=self.person_detector,
                                   engine=self.camera_engine, gallery=self.gallery, role_of=self._enrolled_role,
                                   tz=self.config.branch.tz, recorder=recorder, metrics=self.metrics)
        return CameraWorker(FrameSource(camera.id, camera.source), pipeline, self.counter_rule.handle, self.metrics,
                            scheduler=self._share(camera))

    def _share(self, camera: CameraConfig) -> FrameScheduler | None:
        """The scheduler, with ``camera`` registered in it; None when the cameras do not share the cores."""
        if self.scheduler is not None:
            self.scheduler.register(camera.id, camera.role)
        return self.scheduler

    def _enrolled_role(self, person_id: str) -> str | None:
        """A person's enrolled role; asked for every identified person in every counter frame, so it is
        cached (a role never changes after enrolment; unknown ids are not cached)."""
        role = self._roles.get(person_id)
        if role is None:
            person = self.store.get_person(person_id)
            if person is None:
                return None
            role = self._roles[person_id] = person.role
        return role

    def _load_gallery(self) -> Gallery:
        """The saved gallery of this engine's model, rebuilt from the enrolment photos when it is stale."""
        gallery = self.data.load_gallery(self.engine.model_id, self.engine.dim)
        if gallery is not None and not needs_rebuild(self.store, gallery):
            return gallery
        gallery, _ = rebuild_gallery(store=self.store, engine=self.engine, gallery_dir=self.gallery_dir,
                                     seal=self.data.gallery_seal)
        return gallery

    @property
    def data_dir(self) -> Path:
        return self.config.paths.data_dir

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.sync is not None:  # first the console's newest gallery, then the cameras
            self.sync.start()
        for worker in self.workers:
            worker.source.start()
            worker.start()
        self.retention.start()  # clips, their leftovers and alert snapshots
        self.stranger_crops.start()  # purges the expired crops every minute
        if self.sender is not None:
            self.sender.start()
        else:  # no console to send to: the outbox keeps a month, not for ever
            Outbox(self.store).drop_unsent(older_than=datetime.now(UTC) - UNREGISTERED_KEEP)
        logger.info("edge %s started with %s camera(s)", self.config.branch.id, len(self.workers))

    def stop(self) -> None:
        if self.sender is not None:
            self.sender.stop()
        if self.sync is not None:
            self.sync.stop()
        for worker in self.workers:
            worker.source.stop()
        for worker in self.workers:
            worker.stop()
        for recorder in self.recorders:
            recorder.close()
        self.retention.stop()
        self.stranger_crops.stop()
        self.adaptation.close()  # the population's aggregates, saved before the store closes
        if self._owns_engine:
            self.engine.close()
        self.data.close()

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

    def _refresh_alerts(self, alert_ids: tuple[str, ...]) -> None:
        """The alerts an erasure scrubbed, pushed again as they are now: an open terminal drops the name too."""
        self.hub.refresh([a for a in map(self.store.get_alert, alert_ids) if a is not None])

    def camera_report(self) -> list[dict[str, object]]:
        """Every camera's health as the console's status report wants it (fps since the previous report)."""
        now = time.monotonic()
        out: list[dict[str, object]] = []
        for status in self.camera_status():
            frames, then = self._frames_seen.get(status.camera_id, (status.health.frames, now))
            fps = (status.health.frames - frames) / (now - then) if now > then else 0.0
            self._frames_seen[status.camera_id] = (status.health.frames, now)
            last = status.health.last_frame_at
            out.append({"id": status.camera_id, "name": status.name, "role": status.role,
                        "status": status.health.state, "fps": round(max(fps, 0.0), 2),
                        "last_frame_at": last.isoformat() if last is not None else None})
        out.extend({"id": camera_id, "name": camera_id, "role": "", "status": "not_opened", "fps": 0.0,
                    "last_frame_at": None} for camera_id in self.not_opened)
        return out
