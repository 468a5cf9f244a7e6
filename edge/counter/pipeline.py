"""The per-camera pipeline of ``role: counter`` cameras.

persons (NanoDet) + faces (face engine, identities voted per face track) -> person tracks carrying the
face's identity -> staff | customer (staff gallery, staff zone) -> interactions (distance + time
hysteresis) -> waiting customers and staffed counters -> :class:`CounterEvent` for the counter rule;
every frame also goes to the clip recorder, which records each interaction with pre- and post-roll.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge.cameras.config import CameraConfig
from edge.cameras.tap import Overlay, OverlayBox, OverlayLink
from edge.clips.types import ClipParticipants
from edge.counter.config import CounterConfig
from edge.faces.config import FaceConfig
from edge.faces.tracks import FaceTracks
from edge.metrics import EdgeMetrics
from vision.attendance import UnattendedEvent, UnstaffedEvent
from vision.engines.base import FaceEngine
from vision.engines.gated import CameraGate, GatedDetector, GatedFaceEngine
from vision.face_cadence import LOOKS as FACE_LOOKS
from vision.face_cadence import FaceCadence
from vision.gallery import Gallery
from vision.interaction import InteractionDetector, InteractionEvent, Participant
from vision.people import PeopleTracker, PersonView
from vision.roles import Role, RoleAssigner
from vision.types import Detections, Frame, Image, Interaction

logger = logging.getLogger(__name__)

EventKind = Literal["interaction_started", "interaction_ended", "customer_unattended", "counter_unstaffed"]


class PersonDetector(Protocol):
    def detect(self, image: Image) -> Detections: ...


class Recorder(Protocol):
    """What the pipeline needs of the clip recorder (edge.clips.recorder.ClipRecorder)."""

    def push(self, frame: Frame, people: Sequence[PersonView]) -> None: ...

    def start(self, participants: ClipParticipants, t_mono: float) -> None: ...

    def stop(self, interaction_id: str, t_mono: float) -> None: ...

    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CounterEvent:
    """One thing the counter rule turns into an alert and a stored record."""

    kind: EventKind
    camera_id: str
    camera_name: str
    captured_at: datetime
    interaction: Interaction | None = None
    interaction_id: str | None = None
    wait_s: float | None = None
    unattended: UnattendedEvent | None = None
    waiting_since: datetime | None = None
    crop_jpeg: bytes | None = None
    unstaffed: UnstaffedEvent | None = None


def crop_jpeg(image: Image, box: tuple[float, float, float, float], max_side: int = 320) -> bytes | None:
    """The box (person) cut out, at most ``max_side`` pixels on its long side, as JPEG."""
    h, w = image.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(w, round(box[2])), min(h, round(box[3]))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    crop: np.ndarray = image[y1:y2, x1:x2]
    scale = max_side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else None


class CounterPipeline:
    """Processes frames of one counter camera. Not thread-safe: one thread calls :meth:`process`."""

    def __init__(self, camera: CameraConfig, counter: CounterConfig, face: FaceConfig, *, persons: PersonDetector,
                 engine: FaceEngine, gallery: Gallery, role_of: Callable[[str], str | None], tz: ZoneInfo,
                 recorder: Recorder | None = None, metrics: EdgeMetrics | None = None) -> None:
        self.camera = camera
        self._counter = counter
        # people and faces are detected only where the picture moves (vision.motion), unless turned off
        self.gate = CameraGate(camera.motion) if camera.motion.enabled else None
        # ...and the person detector only on the frames its cadence picks, the people it found carried over between
        self._persons: PersonDetector = persons
        if self.gate is not None:
            self._persons = GatedDetector(persons, self.gate, cadence=counter.person_cadence)
        # ...and faces only while someone in view is unsettled, or at an interval
        self._gated_faces = GatedFaceEngine(engine, self.gate) if self.gate is not None else None
        self._face_cadence = FaceCadence(counter.face_cadence) \
            if self.gate is not None and counter.face_cadence.enabled else None
        engine = self._gated_faces or engine
        # the person detector (onnxruntime, releases the GIL) runs beside the face engine, not after it
        self._beside = ThreadPoolExecutor(1, thread_name_prefix=f"persons-{camera.id}")
        self._role_of = role_of
        self._tz = tz
        self._recorder = recorder
        self._metrics = metrics
        self._faces = FaceTracks(camera.id, face, engine=engine, gallery=gallery, metrics=metrics)
        self._people = PeopleTracker(head_fraction=counter.head_fraction)
        self._roles = RoleAssigner(counter.role_policy(camera.counter))
        homography = camera.counter.floor.homography() if camera.counter and camera.counter.floor else None
        self._interactions = InteractionDetector(camera.id, counter.interaction.policy(), homography)
        self._waiting = counter.waiting_monitor(camera.counter)
        self._counters = counter.counter_monitor(camera.counter)
        self._ids: dict[tuple[int, int], str] = {}  # (staff track, customer track) -> interaction id
        self._frames = 0
        self._last: Frame | None = None
        self.roles: dict[int, Role] = {}  # last role of each live person track (read by tests and the bench)
        self._people_now: list[Participant] = []  # the last frame's people, for the live preview's overlay
        self._views: list[PersonView] = []  # the last frame's person tracks, for the face cadence

    def _timed(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        if self._metrics is not None:
            self._metrics.stage.labels(self.camera.id, stage).observe(now - start)
        return now

    def _detect_persons(self, image: Image) -> Detections:
        t0 = time.perf_counter()
        persons = self._persons.detect(image)
        how = self._persons.decision if isinstance(self._persons, GatedDetector) else "every"
        if how not in ("carried", "still"):  # the stage's time is that of the detector's runs
            self._timed("persons", t0)
        if self._metrics is not None:
            self._metrics.detector_frames.labels(self.camera.id, "persons", how or "every").inc()
        return persons

    def _looks_for_faces(self, t: float) -> bool:
        """The face cadence's decision for this frame; when it looks, it also looks at the unsettled people's
        heads, wherever they moved to since the last look."""
        if self._face_cadence is None or self._gated_faces is None:
            return True
        decision = self._face_cadence.decide(self._views, self._faces.settled, t)
        if decision not in FACE_LOOKS:
            return False
        self._gated_faces.look_also(self._face_cadence.heads(self._counter.head_fraction))
        return True

    def process(self, frame: Frame) -> list[CounterEvent]:
        if self.gate is not None:
            t0 = time.perf_counter()
            self.gate.observe(frame.image, frame.t_mono)
            self._timed("motion", t0)
        faces = Detections.empty()
        look = self._frames % self._counter.face_every == 0 and self._looks_for_faces(frame.t_mono)
        if look:
            beside = self._beside.submit(self._detect_persons, frame.image)
            faces = self._faces.update(frame).faces
            persons = beside.result()
            if self._metrics is not None:
                how = self.gate.looks.get("faces", "skipped") if self.gate is not None else "whole"
                self._metrics.detector_frames.labels(self.camera.id, "faces", how).inc()
        else:
            persons = self._detect_persons(frame.image)
            if self._metrics is not None and self._face_cadence is not None:
                self._metrics.detector_frames.labels(self.camera.id, "faces", "carried").inc()
        self._frames += 1
        self._last = frame
        views, ended = self._people.update(persons, faces, self._faces.identities(), frame.t_mono,
                                           faces_looked=look)
        if look and self._face_cadence is not None:
            self._face_cadence.looked(views, frame.t_mono)
        for track in ended:
            self._roles.forget(track.track_id)
            self.roles.pop(track.track_id, None)
        self._views = views
        people = self._people_now = [self._participant(v, frame.t_mono) for v in views]
        events = self._interaction_events(self._interactions.update(people, frame.image.shape[1], frame.t_mono,
                                                                    frame.captured_at), frame)
        customers = [p for p in people if p.role == "customer"]
        engaged = {i.customer_track for i in self._interactions.active}
        for waited in self._waiting.update(customers, engaged, frame.t_mono):
            events.append(CounterEvent(
                "customer_unattended", self.camera.id, self.camera.display_name, frame.captured_at,
                unattended=waited, crop_jpeg=crop_jpeg(frame.image, waited.box),
                waiting_since=self._at(frame, waited.t_mono - waited.waited_s)))
        open_now = self._counter.is_open(frame.captured_at.astimezone(self._tz))
        staff = [p for p in people if p.role == "staff"]
        for unstaffed in self._counters.update(staff, frame.t_mono, open_now):
            events.append(CounterEvent("counter_unstaffed", self.camera.id, self.camera.display_name,
                                       frame.captured_at, unstaffed=unstaffed))
        if self._recorder is not None:
            self._recorder.push(frame, views)
        if self._metrics is not None:
            self._metrics.frames.labels(self.camera.id).inc()
        return events

    def flush(self) -> list[CounterEvent]:
        """The source ended: end every open interaction and close its clip."""
        if self._last is None:
            return []
        events = self._interaction_events(self._interactions.flush(self._last.t_mono), self._last)
        if self._recorder is not None:
            self._recorder.flush()
        return events

    def overlay(self) -> Overlay:
        """The last frame's people (staff, customer, VIP) with track ids, and the interactions in progress."""
        boxes = tuple(OverlayBox(p.box, "staff" if p.role == "staff" else "vip" if p.person_id else "customer",
                                 p.track_id, p.person_id) for p in self._people_now)
        where = {p.track_id: ((p.box[0] + p.box[2]) / 2, (p.box[1] + p.box[3]) / 2) for p in self._people_now}
        links = tuple(OverlayLink(where[i.staff_track], where[i.customer_track], i.staff_track, i.customer_track)
                      for i in self._interactions.active if i.staff_track in where and i.customer_track in where)
        return Overlay(boxes, links)

    @staticmethod
    def _at(frame: Frame, t_mono: float) -> datetime:
        """Capture time of monotonic ``t_mono``, through this frame's pair of clocks."""
        return frame.captured_at - timedelta(seconds=frame.t_mono - t_mono)

    def _participant(self, view: PersonView, t: float) -> Participant:
        enrolled_role = self._role_of(view.person_id) if view.person_id is not None else None
        decision = self._roles.assign(view.track_id, view.box, enrolled_role, view.person_id, t)
        self.roles[view.track_id] = decision.role
        if decision.role is Role.STAFF:
            person_id = view.person_id if enrolled_role == "staff" else None
            return Participant(view.track_id, "staff", view.box, view.face_box, person_id)
        return Participant(view.track_id, "customer", view.box, view.face_box, decision.vip_id)

    def _interaction_events(self, found: list[InteractionEvent], frame: Frame) -> list[CounterEvent]:
        out: list[CounterEvent] = []
        for event in found:
            inter = event.interaction
            key = (inter.staff_track, inter.customer_track)
            near_since = event.t_mono - (frame.captured_at - inter.started_at).total_seconds()
            if event.kind == "started":
                interaction_id = self._ids[key] = uuid.uuid4().hex
                since = self._waiting.waiting_since(inter.customer_track)
                wait_s = None if since is None else round(max(0.0, near_since - since), 3)
                logger.info("camera %s: interaction %s started (staff track %s, customer track %s)",
                            self.camera.id, interaction_id, key[0], key[1])
                if self._recorder is not None:
                    self._recorder.start(ClipParticipants(interaction_id, self.camera.id, key[0], key[1],
                                                          inter.staff_id, inter.vip_id), near_since)
                out.append(CounterEvent("interaction_started", self.camera.id, self.camera.display_name,
                                        frame.captured_at, interaction=inter, interaction_id=interaction_id,
                                        wait_s=wait_s))
                continue
            interaction_id = self._ids.pop(key, '') or uuid.uuid4().hex
            logger.info("camera %s: interaction %s ended after %.1f s", self.camera.id, interaction_id,
                        inter.duration_s or 0.0)
            if self._recorder is not None:  # post-roll counts from the last moment the two were near
                last_near = event.t_mono - (frame.captured_at - (inter.ended_at or frame.captured_at)).total_seconds()
                self._recorder.stop(interaction_id, last_near)
            out.append(CounterEvent("interaction_ended", self.camera.id, self.camera.display_name, frame.captured_at,
                                    interaction=inter, interaction_id=interaction_id))
        return out

