"""Test helpers of the review store: a real H.264 MP4 written with PyAV and its ClipWritten record."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
from cryptography.fernet import Fernet

from edge.clips.types import ClipParticipants, ClipWritten, InteractionRecord
from edge.review.store import ReviewStore
from edge.store.db import Store

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Asia/Shanghai
# (clip id, start, duration s, camera, staff id): c-late starts 16:30 UTC, i.e. 00:30 on 03-03 in Shanghai.
CLIPS = [
    ("c-a1", T0, 30.0, "counter-1", "staff-a"),
    ("c-a2", T0 + timedelta(hours=2), 300.0, "counter-1", "staff-a"),
    ("c-b1", T0 + timedelta(hours=3), 90.0, "counter-2", "staff-b"),
    ("c-u1", T0 + timedelta(hours=4), 5.0, "counter-2", None),
    ("c-late", T0 + timedelta(hours=15, minutes=30), 600.0, "counter-1", "staff-b"),
]


def write_h264(path: Path, *, frames: int = 8, width: int = 160, height: int = 120, fps: int = 10,
               seed: int = 0) -> Path:
    """A real H.264 (libx264, yuv420p) MP4 of noise frames, so that it is some tens of KiB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def participants(interaction_id: str, *, camera_id: str = "counter-1", staff_id: str | None = "staff-a",
                 vip_id: str | None = None) -> ClipParticipants:
    return ClipParticipants(interaction_id=interaction_id, camera_id=camera_id, staff_track=1, customer_track=2,
                            staff_id=staff_id, vip_id=vip_id)


def clip_written(path: Path, clip_id: str, *, started_at: datetime = T0, duration_s: float = 30.0,
                 camera_id: str = "counter-1", staff_id: str | None = "staff-a", vip_id: str | None = None,
                 plain: bytes | None = None) -> ClipWritten:
    """The record the clip writer would hand over for the file at ``path``: the real sha256 and size of the
    MP4, ``plain`` when the file holds it encrypted, else the file's own bytes."""
    data = plain if plain is not None else path.read_bytes() if path.is_file() else b""
    return ClipWritten(clip_id=clip_id, participants=participants(f"i-{clip_id}", camera_id=camera_id,
                                                                  staff_id=staff_id, vip_id=vip_id),
                       path=path.resolve(), sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                       started_at=started_at, ended_at=started_at + timedelta(seconds=duration_s),
                       duration_s=duration_s, frames=8, pre_roll_frames=2)


def interaction(interaction_id: str, started_at: datetime, *, staff_id: str | None = "staff-a",
                duration_s: float | None = 60.0, wait_s: float | None = None,
                camera_id: str = "counter-1") -> InteractionRecord:
    ended = None if duration_s is None else started_at + timedelta(seconds=duration_s)
    return InteractionRecord(participants(interaction_id, camera_id=camera_id, staff_id=staff_id), started_at,
                             ended, duration_s, wait_s)


def new_review_store(folder: Path) -> ReviewStore:
    return ReviewStore(Store(folder / "edge.db", branch_id="test-branch", cipher=Fernet(Fernet.generate_key())))
