"""The encoder thread of one camera's clip recorder, and the bounded job queue that feeds it.

The pipeline thread only queues jobs; this thread owns every open clip file: it blurs, downscales, encodes,
publishes the finished file and reports it. Drop policy: frame jobs are bounded (``queue_size``); when the
queue is full the newest frame is refused, and the recorder counts it as dropped for that clip. Jobs that open
or close a clip are never refused (there are few of them), so a clip is never left open by a full queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

from edge.clips.config import ClipConfig
from edge.clips.encoder import ENCODER_ERRORS, Mp4Writer, finalise_clip, make_private_dirs
from edge.clips.frames import prepare_image
from edge.clips.manifest import ClipManifest, manifest_path, part_path, write_manifest
from edge.clips.participants import ParticipantLinker
from edge.clips.ring import RingEntry
from edge.clips.types import ClipParticipants, ClipWritten
from vision.types import Frame

logger = logging.getLogger(__name__)

WriterFactory = Callable[[Path, ClipConfig, bytes], Mp4Writer]


def default_writer(path: Path, config: ClipConfig, key: bytes) -> Mp4Writer:
    return Mp4Writer(path, key=key, preset=config.preset, crf=config.crf)


@dataclass(frozen=True, slots=True)
class OpenClip:
    clip_id: str
    participants: ClipParticipants
    pre_roll: tuple[RingEntry, ...]  # every buffered frame from pre_roll_s before the start on
    pre_roll_frames: int  # of those, the frames captured before the start


@dataclass(frozen=True, slots=True)
class ClipFrame:
    clip_id: str
    entry: RingEntry


@dataclass(frozen=True, slots=True)
class CloseClip:
    clip_id: str
    dropped_frames: int
    reason: str


class StopWorker:
    """Sentinel job: every earlier job is done, then the thread ends."""


Job = OpenClip | ClipFrame | CloseClip | StopWorker


class JobQueue:
    """FIFO of jobs in which at most ``max_frames`` frame jobs wait; never blocks a producer."""

    def __init__(self, max_frames: int) -> None:
        self._max_frames = max_frames
        self._jobs: deque[Job] = deque()
        self._frames = 0
        self._cond = threading.Condition()

    def offer_frame(self, job: ClipFrame) -> bool:
        """Queue ``job`` unless ``max_frames`` frames already wait; False: refused (the caller drops it)."""
        with self._cond:
            if self._frames >= self._max_frames:
                return False
            self._jobs.append(job)
            self._frames += 1
            self._cond.notify()
        return True

    def put(self, job: OpenClip | CloseClip | StopWorker) -> None:
        with self._cond:
            self._jobs.append(job)
            self._cond.notify()

    def take(self) -> Job:
        with self._cond:
            while not self._jobs:
                self._cond.wait()
            job = self._jobs.popleft()
            if isinstance(job, ClipFrame):
                self._frames -= 1
            return job

    @property
    def frames_waiting(self) -> int:
        return self._frames


@dataclass(slots=True)
class _Clip:
    """An open clip, as the encoder thread sees it."""

    clip_id: str
    participants: ClipParticipants
    linker: ParticipantLinker | None  # who is a participant, frame by frame; None: blur nobody
    pre_roll_frames: int
    writer: Mp4Writer | None = None
    final: Path | None = None
    first: Frame | None = None
    last: Frame | None = None
    failed: bool = False


class EncoderWorker:
    """One thread that encodes every clip of one camera. ``on_written`` is called on this thread."""

    def __init__(self, camera_id: str, config: ClipConfig, clips_dir: Path,
                 on_written: Callable[[ClipWritten], None], *, key: bytes, tz: tzinfo,
                 writer_factory: WriterFactory) -> None:
        self.camera_id = camera_id
        self._config = config
        self._clips_dir = clips_dir
        self._key = key
        self._on_written = on_written
        self._tz = tz
        self._writer_factory = writer_factory
        self.queue = JobQueue(config.queue_size)
        self._clips: dict[str, _Clip] = {}
        self._thread = threading.Thread(target=self._run, name=f"clips-{camera_id}", daemon=True)
        # Counters: this thread is the only writer; other threads read them.
        self.frames_encoded = 0
        self.encode_seconds = 0.0
        self.clips_written = 0
        self.clips_failed = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Finish the queued jobs, then end the thread. False: still busy after ``timeout`` seconds."""
        self.queue.put(StopWorker())
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            job = self.queue.take()
            if isinstance(job, StopWorker):
                break
            try:
                self._handle(job)
            except Exception:  # a bug must not end the thread: every later clip would be lost
                logger.exception("camera %s: clip job %s failed", self.camera_id, type(job).__name__)
        for clip in self._clips.values():  # only when a close job never came (a bug): free the files
            self._fail(clip, "the encoder stopped", None)
        self._clips.clear()

    def _handle(self, job: OpenClip | ClipFrame | CloseClip) -> None:
        if isinstance(job, OpenClip):
            p = job.participants
            linker = (ParticipantLinker((p.staff_track, p.customer_track), (p.staff_id, p.vip_id))
                      if self._config.blur_non_participants else None)
            clip = self._clips[job.clip_id] = _Clip(job.clip_id, p, linker, job.pre_roll_frames)
            # the pre-roll may show the participants under earlier tracks: linked back from the newest frame
            keeps = linker.backfill([e.people for e in job.pre_roll]) if linker is not None else None
            for i, entry in enumerate(job.pre_roll):
                self._encode(clip, entry, None if keeps is None else keeps[i])
        elif isinstance(job, ClipFrame):
            found = self._clips.get(job.clip_id)
            if found is not None:
                keep = None if found.linker is None else found.linker.next(job.entry.people)
                self._encode(found, job.entry, keep)
        else:
            found = self._clips.pop(job.clip_id, None)
            if found is not None:
                self._close(found, job.dropped_frames, job.reason)

    def _encode(self, clip: _Clip, entry: RingEntry, keep: frozenset[int] | None) -> None:
        """Encode one frame; ``keep``: the participants' tracks in it (everyone else is blurred), None: nobody."""
        if clip.failed:
            return
        started = time.perf_counter()
        frame = entry.frame
        image = prepare_image(frame.image, entry.people, keep, self._config.max_width)
        try:
            if clip.writer is None:
                self._create(clip, frame)
            assert clip.writer is not None
            clip.writer.write(image, frame.t_mono)
        except ENCODER_ERRORS as exc:
            self._fail(clip, "encoding", exc)
            return
        if clip.first is None:
            clip.first = frame
        clip.last = frame
        self.frames_encoded += 1
        self.encode_seconds += time.perf_counter() - started

    def _create(self, clip: _Clip, first: Frame) -> None:
        """The clip's folder (0700), its manifest, then its ``.part`` file (0600, written by the writer)."""
        day = first.captured_at.astimezone(self._tz).strftime("%Y-%m-%d")
        clip.final = self._clips_dir / self.camera_id / day / f"{clip.clip_id}.mp4"
        make_private_dirs(clip.final.parent)
        write_manifest(manifest_path(clip.final), ClipManifest(clip.clip_id, clip.participants, first.captured_at,
                                                               clip.pre_roll_frames), self._key)
        clip.writer = self._writer_factory(part_path(clip.final), self._config, self._key)

    def _close(self, clip: _Clip, dropped: int, reason: str) -> None:
        if clip.failed:
            return
        if clip.writer is None or clip.first is None or clip.last is None or clip.final is None:
            logger.info("camera %s: clip of interaction %s has no frame; nothing written",
                        self.camera_id, clip.participants.interaction_id)
            return
        try:
            clip.writer.finish()
            done = finalise_clip(clip.writer.path, clip.final, self._key)
        except ENCODER_ERRORS as exc:
            self._fail(clip, "closing", exc)
            clip.final.unlink(missing_ok=True)
            return
        written = ClipWritten(
            clip_id=clip.clip_id, participants=clip.participants, path=clip.final.resolve(), sha256=done.sha256,
            size_bytes=done.size_bytes, started_at=clip.first.captured_at, ended_at=clip.last.captured_at,
            duration_s=clip.last.t_mono - clip.first.t_mono, frames=done.frames,
            pre_roll_frames=min(clip.pre_roll_frames, done.frames), dropped_frames=dropped)
        self.clips_written += 1
        logger.info("camera %s: clip %s of interaction %s written (%s, %.1f s, %s frames, %s dropped)",
                    self.camera_id, clip.clip_id, clip.participants.interaction_id, reason, written.duration_s,
                    written.frames, dropped)
        try:
            self._on_written(written)
        except Exception:  # the receiver's failure must not end this thread; the next start indexes the clip
            logger.exception("camera %s: on_written failed for clip %s", self.camera_id, clip.clip_id)
            return
        clip.writer.path.unlink(missing_ok=True)
        manifest_path(clip.final).unlink(missing_ok=True)

    def _fail(self, clip: _Clip, stage: str, exc: BaseException | None) -> None:
        clip.failed = True
        self.clips_failed += 1
        logger.error("camera %s: clip %s of interaction %s failed while %s: %s", self.camera_id, clip.clip_id,
                     clip.participants.interaction_id, stage, exc)
        if clip.writer is not None:
            clip.writer.abort()
        if clip.final is not None:
            manifest_path(clip.final).unlink(missing_ok=True)
