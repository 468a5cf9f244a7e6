"""One clip file: H.264 (libx264, yuv420p) in an MP4 that browsers play, with variable frame rate, encrypted.

While a clip is recorded, :class:`Mp4Writer` writes **fragmented** MP4 (an empty index first, then a
``moof``+``mdat`` fragment about every second) through :class:`vault.clip_file.ClipWriter` into a
``.part`` file. Fragmented MP4 needs no seeking back, so it streams through the encryption, and a process
killed mid-clip leaves a prefix of whole fragments that still plays (:func:`complete_fragments`). When the
clip closes, :func:`finalise_clip` remuxes it (packets copied, nothing re-encoded) into an ordinary MP4
whose index comes first (``+faststart``: a browser can start playing before the whole file has arrived)
and encrypts that as the clip file. The plaintext exists only in memory.

Each frame's timestamp comes from its monotonic capture time relative to the clip's first frame, in
milliseconds (the MP4 track's timescale is 1000 too), so a clip lasts as long as the real scene even when
the camera is processed at an irregular rate.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import cv2
import numpy as np

from edge.errors import ClipFileError
from vault.clip_file import ClipReader, ClipWriter, encrypt_bytes, fsync_dir
from vision.types import Image

logger = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)  # milliseconds
FRAGMENT_US = 1_000_000  # a fragment (what a killed encoder can lose at most, besides x264's lookahead) ~1 s
# The .part file's chunks are small, so that a fragment is on disk as soon as it is written even when a still
# scene makes fragments of a few hundred bytes: killed at 8 fps, 720p, the salvaged clip lacks the last
# 2.75 s (median; max 3.25 s; x264's lookahead and the open fragment). The published clip uses CHUNK_BYTES.
RECORDING_CHUNK_BYTES = 1024
RECORDING_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": str(FRAGMENT_US),
                     "video_track_timescale": "1000"}
FINAL_OPTIONS = {"movflags": "+faststart", "video_track_timescale": "1000"}
BT601 = 6  # AVCOL_SPC_SMPTE170M, AVCOL_PRI_SMPTE170M, AVCOL_TRC_SMPTE170M
LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG
# what opening, encoding, closing or finalising a clip may raise
ENCODER_ERRORS = (av.FFmpegError, OSError, ValueError, ClipFileError)


def make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents with mode 0700 (``Path.mkdir`` gives parents the umask's)."""
    missing = []
    for path in (folder, *folder.parents):
        if path.is_dir():
            break
        missing.append(path)
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not path.is_dir():
                raise


class Mp4Writer:
    """Writes one clip being recorded to ``path`` (the ``.part`` file: fragmented MP4, encrypted with
    ``key``, mode 0600, its folders 0700). The file is created with the first frame, whose size (even) fixes
    the clip's size; later frames of another size are resized to it. Used by one thread. Raises what PyAV
    and the file system raise (:data:`ENCODER_ERRORS`)."""

    def __init__(self, path: Path, *, key: bytes, preset: str, crf: int, gop: int = 30) -> None:
        self.path = path
        self._key = key
        self._preset = preset
        self._crf = crf
        self._gop = gop
        self._sink: ClipWriter | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._size = (0, 0)
        self._t0 = 0.0
        self._last_pts = -1
        self.frames = 0  # given to the encoder
        self.muxed = 0  # encoded and handed to the muxer (the encoder holds a few frames back)

    def _open(self, width: int, height: int, t_mono: float) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"clip frames must have even dimensions, got {width}x{height}")
        make_private_dirs(self.path.parent)
        # set first, so that abort() removes it
        self._sink = ClipWriter.create(self.path, self._key, chunk_size=RECORDING_CHUNK_BYTES)
        container = av.open(self._sink, mode="w", format="mp4", options=RECORDING_OPTIONS)
        self._container = container
        stream = container.add_stream("libx264", options={"preset": self._preset, "crf": str(self._crf)})
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        context = stream.codec_context
        context.time_base = TIME_BASE
        context.gop_size = self._gop  # a key frame every few seconds, so that a player can seek
        # BT.601, limited range: what cv2's BGR->I420 conversion gives, tagged so that players need not guess
        context.colorspace = context.color_primaries = context.color_trc = BT601
        context.color_range = LIMITED_RANGE
        self._stream = stream
        self._size = (width, height)
        self._t0 = t_mono

    def write(self, image: Image, t_mono: float) -> None:
        """Encode one BGR frame captured at monotonic ``t_mono`` (seconds, increasing)."""
        if self._stream is None:
            self._open(image.shape[1], image.shape[0], t_mono)
        assert self._stream is not None and self._container is not None
        if (image.shape[1], image.shape[0]) != self._size:
            image = np.asarray(cv2.resize(image, self._size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        # cv2's conversion is several times faster than PyAV's swscale and matches it to one level
        i420 = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        pts = max(round((t_mono - self._t0) * 1000), self._last_pts + 1)  # strictly increasing, as MP4 needs
        frame.pts = pts
        frame.time_base = TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
            self.muxed += 1
        self._last_pts = pts
        self.frames += 1

    def finish(self) -> None:
        """Drain the encoder, close the fragmented MP4 and seal the ``.part`` file (final chunk, fsync)."""
        if self._container is None or self._stream is None or self._sink is None:
            raise ValueError("no frame was written")
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        container, self._container = self._container, None
        container.close()
        self._sink.close()

    def abort(self) -> None:
        """Give up: close what is open, ignoring its errors, and delete the file."""
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except ENCODER_ERRORS as exc:
                logger.debug("closing the aborted clip %s: %s", self.path, exc)
        if self._sink is not None:
            self._sink.discard()
        self.path.unlink(missing_ok=True)


Readable = io.RawIOBase | BinaryIO


def complete_fragments(reader: Readable, size: int) -> int:
    """The length of the longest prefix of a fragmented MP4 that ends with a whole fragment: ``ftyp``,
    ``moov`` and then whole ``moof``+``mdat`` pairs (top-level boxes only are read). 0: not one fragment."""
    pos, good, pending_moof = 0, 0, False
    while pos + 8 <= size:
        reader.seek(pos)
        head = reader.read(16)
        box, kind = int.from_bytes(head[:4], "big"), head[4:8]
        if box == 1 and len(head) >= 16:
            box = int.from_bytes(head[8:16], "big")
        if box < 8 or pos + box > size:
            break
        pos += box
        if kind == b"moof":
            pending_moof = True
        elif kind == b"mdat" and pending_moof:
            good, pending_moof = pos, False
    return good


@dataclass(frozen=True, slots=True)
class Finalised:
    """A published clip file; sha256 and size are of the plaintext MP4 (what the review API serves)."""

    sha256: str
    size_bytes: int
    frames: int
    span_s: float  # last frame's presentation time minus the first's


def _faststart(source: Readable) -> tuple[bytes, int, float]:
    """Remux the MP4 in ``source`` into an MP4 with its index first (in memory): its bytes, its number of
    frames and the time from its first to its last frame."""
    out = io.BytesIO()
    # +faststart re-reads the finished output to move the index forward; give it a snapshot of the buffer
    with av.open(source, mode="r", format="mp4") as src, av.open(
            out, mode="w", format="mp4", options=FINAL_OPTIONS,
            io_open=lambda url, flags, options: io.BytesIO(out.getvalue())) as dst:
        video = src.streams.video[0]
        stream = dst.add_stream_from_template(video)
        frames, first, last, shift = 0, None, None, None
        for packet in src.demux(video):
            if packet.dts is None or packet.pts is None:  # the demuxer's empty flush packet
                continue
            # fragmented MP4 has no edit list: its times start at the decoder delay, not at 0. The first packet
            # is the first frame (a key frame, time 0 when recorded); shifting back to it restores the times
            if shift is None:
                shift = packet.pts
            packet.pts -= shift
            packet.dts -= shift
            first = packet.pts if first is None else min(first, packet.pts)
            last = packet.pts if last is None else max(last, packet.pts)
            packet.stream = stream
            dst.mux(packet)
            frames += 1
        base = video.time_base or TIME_BASE
    span = float((last - first) * base) if first is not None and last is not None else 0.0
    return out.getvalue(), frames, span


def inspect_clip(path: Path, key: bytes) -> Finalised:
    """The index facts of a published clip file (its plaintext's sha256 and size, its frames and span).
    Raises :class:`ClipFileError` for a file that does not open with ``key`` or is damaged."""
    digest = hashlib.sha256()
    with ClipReader(path, key) as reader:
        for piece in reader.iter_range(0, reader.size):
            digest.update(piece)
        reader.seek(0)
        frames, first, last = 0, None, None
        with av.open(reader, mode="r", format="mp4") as container:
            video = container.streams.video[0]
            for packet in container.demux(video):
                if packet.dts is None or packet.pts is None:
                    continue
                frames += 1
                first = packet.pts if first is None else min(first, packet.pts)
                last = packet.pts if last is None else max(last, packet.pts)
            base = video.time_base or TIME_BASE
        size = reader.size
    span = float((last - first) * base) if first is not None and last is not None else 0.0
    return Finalised(digest.hexdigest(), size, frames, span)


def finalise_clip(part: Path, final: Path, key: bytes, *, salvage: bool = False) -> Finalised:
    """Turn the recorded ``part`` file into the clip file ``final``: remuxed with its index first, encrypted
    with ``key``, written beside it and renamed into place (fsynced). ``part`` is left for the caller to
    delete. ``salvage``: ``part`` is what a killed encoder left; its whole fragments become the clip.
    Raises :class:`ClipFileError` when there is no frame to keep, or what PyAV and the file system raise."""
    with ClipReader(part, key, partial=salvage) as reader:
        if salvage:
            reader.limit(complete_fragments(reader, reader.size))
        if reader.size == 0:
            raise ClipFileError(f"{part} holds no complete fragment")
        plain, frames, span = _faststart(reader)
    if frames == 0:
        raise ClipFileError(f"{part} holds no frame")
    tmp = final.with_name(final.name + ".tmp")
    tmp.unlink(missing_ok=True)
    encrypt_bytes(plain, tmp, key)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return Finalised(hashlib.sha256(plain).hexdigest(), len(plain), frames, span)
