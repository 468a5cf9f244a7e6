"""The compliance clip recorder of one counter camera.

Every processed frame is pushed into a ring buffer (the pre-roll) and into each open recording. A recording
starts with the buffered frames from ``pre_roll_s`` before the interaction's start, runs until ``post_roll_s``
after its end (or until ``max_clip_s``), and becomes ``<clips_dir>/<camera>/<YYYY-MM-DD>/<clip_id>.mp4``,
encrypted with the clip key (:mod:`vault.clip_file`; folders 0700, files 0600).
Several recordings may be open at once on one camera; each has its own file and blurs everyone but its own two
participants.

Threads: :meth:`push`, :meth:`start`, :meth:`stop`, :meth:`flush` and :meth:`close` are called by the camera's
pipeline thread (close may also be called by another thread once that one has stopped); they only queue work
and never raise for a clip that cannot be written. Blurring, downscaling and encoding happen on the recorder's
encoder thread (:mod:`edge.clips.worker`), which also calls ``on_written``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path

from edge.clips.config import ClipConfig
from edge.clips.frames import ClipPerson, PersonLike
from edge.clips.ring import FrameRing, RingEntry
from edge.clips.types import ClipParticipants, ClipWritten
from edge.clips.worker import ClipFrame, CloseClip, EncoderWorker, OpenClip, WriterFactory, default_writer
from vision.types import Frame

__all__ = ["ClipPerson", "ClipRecorder", "ClipStats", "PersonLike"]

logger = logging.getLogger(__name__)

DEFAULT_RING_MAX_FRAMES = 150


@dataclass(frozen=True, slots=True)
class ClipStats:
    """Counters of one recorder since it was made."""

    frames_encoded: int
    frames_dropped: int  # refused by the full encoder queue (drop newest)
    encode_seconds: float  # encoder-thread time spent blurring, downscaling and encoding frames
    clips_written: int
    clips_failed: int  # an encoder or disk error; the partial file was deleted
    clips_cut: int  # closed by max_clip_s
    queue_frames: int  # frames waiting for the encoder now

    @property
    def encode_ms_per_frame(self) -> float:
        return 1000 * self.encode_seconds / self.frames_encoded if self.frames_encoded else 0.0


@dataclass(slots=True)
class _Recording:
    """An open recording, as the pipeline thread sees it."""

    clip_id: str
    interaction_id: str
    t_first: float | None  # t_mono of its first frame
    deadline: float | None = None  # t_mono of its last frame, once stopped
    dropped: int = 0


class ClipRecorder:
    """Records the interactions of one camera (see the module's doc). ``ring_s`` is how many seconds of
    frames the ring buffer keeps (default ``pre_roll_s``): make it ``pre_roll_s`` plus the longest delay
    between an interaction's start and the :meth:`start` call, since the pre-roll is taken relative to the
    ``t_mono`` given to :meth:`start`. ``ring_max_frames`` caps the ring however fast frames come. Frames
    are buffered by reference: the pipeline must not modify a frame's image after pushing it."""

    def __init__(self, camera_id: str, config: ClipConfig, clips_dir: Path,
                 on_written: Callable[[ClipWritten], None], *, key: bytes, ring_s: float | None = None,
                 ring_max_frames: int = DEFAULT_RING_MAX_FRAMES, tz: tzinfo = UTC,
                 writer_factory: WriterFactory = default_writer) -> None:
        if not camera_id or camera_id in {".", ".."} or "/" in camera_id or "\\" in camera_id:
            raise ValueError(f"camera id {camera_id!r} cannot name a clip folder")
        self.camera_id = camera_id
        self._config = config
        keep_s = config.pre_roll_s if ring_s is None else max(ring_s, config.pre_roll_s)
        self._ring = FrameRing(keep_s, ring_max_frames)
        self._worker = EncoderWorker(camera_id, config, clips_dir, on_written, key=key, tz=tz,
                                     writer_factory=writer_factory)
        self._started = False  # the encoder thread, started by the first recording
        self._closed = False
        self._open: dict[str, _Recording] = {}  # interaction id -> recording
        self._dropped = 0
        self._cut = 0

    @property
    def _active(self) -> bool:
        return self._config.enabled and not self._closed

    @property
    def open_interactions(self) -> list[str]:
        return list(self._open)

    @property
    def stats(self) -> ClipStats:
        w = self._worker
        return ClipStats(frames_encoded=w.frames_encoded, frames_dropped=self._dropped,
                         encode_seconds=w.encode_seconds, clips_written=w.clips_written,
                         clips_failed=w.clips_failed, clips_cut=self._cut, queue_frames=w.queue.frames_waiting)

    def push(self, frame: Frame, people: Sequence[PersonLike]) -> None:
        """Every processed frame, in order, with the people tracked in it (boxes in this frame's pixels)."""
        if not self._active:
            return
        entry = RingEntry(frame, tuple(people))
        self._ring.push(entry)
        t = frame.t_mono
        for rec in list(self._open.values()):
            if rec.deadline is not None and t > rec.deadline:
                self._finish(rec, "post-roll done")
                continue
            if rec.t_first is None:
                rec.t_first = t
            elif t - rec.t_first > self._config.max_clip_s:
                logger.warning("camera %s: interaction %s recorded for more than %.0f s; clip cut",
                               self.camera_id, rec.interaction_id, self._config.max_clip_s)
                self._cut += 1
                self._finish(rec, "cut at max_clip_s")
                continue
            if not self._worker.queue.offer_frame(ClipFrame(rec.clip_id, entry)):
                if rec.dropped == 0:
                    logger.warning("camera %s: clip encoder behind; dropping frames of interaction %s",
                                   self.camera_id, rec.interaction_id)
                rec.dropped += 1
                self._dropped += 1

    def start(self, participants: ClipParticipants, t_mono: float) -> None:
        """Open a recording of an interaction that started at ``t_mono``: it begins with the buffered frame
        that was showing ``pre_roll_s`` before then, and every one after it (and those pushed since)."""
        if not self._active:
            return
        key = participants.interaction_id
        if key in self._open:
            logger.warning("camera %s: interaction %s is already being recorded", self.camera_id, key)
            return
        entries = self._ring.covering(t_mono - self._config.pre_roll_s)
        pre_roll = sum(1 for e in entries if e.frame.t_mono < t_mono)
        if not self._started:
            self._worker.start()
            self._started = True
        rec = _Recording(uuid.uuid4().hex, key, entries[0].frame.t_mono if entries else None)
        self._open[key] = rec
        self._worker.queue.put(OpenClip(rec.clip_id, participants, tuple(entries), pre_roll))
        logger.debug("camera %s: recording interaction %s as clip %s with %s pre-roll frame(s)",
                     self.camera_id, key, rec.clip_id, pre_roll)

    def stop(self, interaction_id: str, t_mono: float) -> None:
        """The interaction ended at ``t_mono``: keep recording until ``post_roll_s`` after it, then close."""
        if not self._active:
            return
        rec = self._open.get(interaction_id)
        if rec is None:
            logger.debug("camera %s: no open recording of interaction %s", self.camera_id, interaction_id)
            return
        rec.deadline = t_mono + self._config.post_roll_s
        newest = self._ring.newest_t
        if newest is not None and newest >= rec.deadline:
            self._finish(rec, "post-roll done")

    def flush(self) -> None:
        """The source ended: close every open recording now (its post-roll cut short) and empty the ring."""
        for rec in list(self._open.values()):
            self._finish(rec, "source ended")
        self._ring.clear()

    def close(self, timeout: float = 30.0) -> None:
        """Flush, let the encoder finish every queued clip (up to ``timeout`` seconds) and end its thread.
        Later calls do nothing."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._started and not self._worker.stop(timeout):
            logger.error("camera %s: clip encoder still busy after %.0f s; unfinished clips are lost",
                         self.camera_id, timeout)

    def _finish(self, rec: _Recording, reason: str) -> None:
        del self._open[rec.interaction_id]
        self._worker.queue.put(CloseClip(rec.clip_id, rec.dropped, reason))
