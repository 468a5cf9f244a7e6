"""The compliance clip recorder: real H.264 MP4 files from real photos, read back with PyAV."""

from __future__ import annotations

import errno
import hashlib
import logging
import stat
import threading
import time
from collections.abc import Callable
from datetime import timedelta, timezone
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge.clips.config import ClipConfig
from edge.clips.encoder import Mp4Writer
from edge.clips.frames import ClipPerson, even_size, head_region, prepare_image
from edge.clips.recorder import ClipRecorder
from edge.clips.ring import FrameRing, RingEntry
from edge.clips.types import ClipParticipants
from tests.edge.clip_helpers import (
    CAPTURED_T0,
    CLIP_KEY,
    T0,
    Written,
    decode,
    draw_marker,
    fit,
    jittered_times,
    laplacian_var,
    make_frame,
    plaintext,
    read_marker,
)
from vision.engines.base import FaceEngine
from vision.types import Image

CAM = "counter-1"
Photo = Callable[[str], Image]


def participants(interaction_id: str, staff: int = 1, customer: int = 2) -> ClipParticipants:
    return ClipParticipants(interaction_id, CAM, staff, customer)


@pytest.fixture(scope="module")
def scene(photo: Photo) -> Image:
    """A real photo (a group of six) at 320x240."""
    return fit(photo("t1.jpg"), 320, 240)


# --- configuration ---------------------------------------------------------------------------------------

def test_config_defaults_and_clip_dir_resolution(tmp_path: Path) -> None:
    # given the defaults / when resolving the folder against a data dir / then relative joins, absolute stays
    config = ClipConfig()
    assert (config.enabled, config.pre_roll_s, config.post_roll_s, config.preset, config.crf) == (
        True, 5.0, 3.0, "veryfast", 23)
    assert config.resolve_dir(tmp_path) == tmp_path / "clips"
    assert ClipConfig(dir=tmp_path / "x").resolve_dir(Path("/elsewhere")) == tmp_path / "x"
    assert all(f.description for f in ClipConfig.model_fields.values())


@pytest.mark.parametrize("bad", [
    {"pre_roll_s": -1}, {"pre_roll_s": 61}, {"post_roll_s": 60.5}, {"crf": 52}, {"preset": "placebo"},
    {"retention_days": 0}, {"queue_size": 0}, {"max_clip_s": 0}, {"unknown": 1},
])
def test_config_refuses_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ClipConfig.model_validate(bad)


@pytest.mark.parametrize("camera_id", ["", ".", "..", "a/b", "a\\b"])
def test_a_camera_id_that_cannot_name_a_folder_is_refused(tmp_path: Path, camera_id: str) -> None:
    with pytest.raises(ValueError, match="camera id"):
        ClipRecorder(camera_id, ClipConfig(), tmp_path, Written(), key=CLIP_KEY)


# --- frame preparation and the ring ------------------------------------------------------------------------

FACE = (100.0, 60.0, 160.0, 120.0)
BODY = (80.0, 40.0, 180.0, 240.0)


@pytest.mark.parametrize(("people", "keep", "blurred"), [
    ([], {1, 2}, None),  # nobody in the frame
    ([ClipPerson(1, BODY, FACE)], {1, 2}, None),  # only a participant
    ([ClipPerson(3, BODY, FACE)], None, None),  # blurring off
    ([ClipPerson(3, BODY, FACE)], {1, 2}, (94, 54, 166, 126)),  # a face box, enlarged 20 %
    ([ClipPerson(3, BODY, None)], {1, 2}, (100, 40, 160, 80)),  # no face: the top 20 %, central 60 %
    ([ClipPerson(3, (-50.0, -50.0, 10.0, 10.0), (-40.0, -40.0, 5.0, 5.0))], {1, 2}, (0, 0, 10, 10)),  # off the edge
    ([ClipPerson(3, (5.0, 5.0, 5.0, 5.0), None)], {1, 2}, None),  # an empty box
    ([ClipPerson(3, (float("nan"), 0.0, 1.0, 1.0), None)], {1, 2}, None),  # a bad box
])
def test_prepare_image_blurs_only_non_participants(scene: Image, people: list[ClipPerson], keep: set[int] | None,
                                                   blurred: tuple[int, int, int, int] | None) -> None:
    # given a real 320x240 photo / when preparing it for a clip
    original = scene.copy()
    out = prepare_image(scene, people, keep, max_width=1280)
    # then the input is untouched, and only the expected region changed (and lost its detail)
    assert np.array_equal(scene, original) and out.shape == scene.shape
    changed = np.argwhere(np.any(out != scene, axis=2))
    if blurred is None:
        assert out is scene or not changed.size
        return
    x1, y1, x2, y2 = blurred
    assert changed[:, 0].min() >= y1 and changed[:, 0].max() < y2
    assert changed[:, 1].min() >= x1 and changed[:, 1].max() < x2
    if x2 - x1 > 20:
        assert laplacian_var(out, blurred) < 0.2 * laplacian_var(scene, blurred)


def test_prepare_image_downscales_to_even_dimensions_and_scales_the_blur(photo: Photo) -> None:
    # given a 1281x721 frame with a non-participant's face box in its pixels
    image = fit(photo("obama.jpg"), 1281, 721)
    person = ClipPerson(3, (400.0, 0.0, 900.0, 721.0), (590.0, 90.0, 750.0, 245.0))
    # when preparing it for a 640-wide clip
    out = prepare_image(image, [person], {1, 2}, max_width=640)
    # then it is 640x360 and the face, scaled by ~0.5, is blurred there
    assert out.shape == (360, 640, 3) and even_size(1281, 721, 640) == (640, 360)
    assert even_size(321, 241, 1280) == (320, 240)
    region = tuple(v * 640 / 1281 for v in head_region(person))
    reference = prepare_image(image, [], None, max_width=640)
    assert laplacian_var(out, region) < 0.2 * laplacian_var(reference, region)


def test_ring_keeps_the_last_seconds_and_at_most_max_frames(scene: Image) -> None:
    # given a ring of 2 s and 5 frames / when frames come every 0.25 s (the cap binds), then every 1 s
    ring = FrameRing(keep_s=2.0, max_frames=5)
    for i in range(6):
        ring.push(RingEntry(make_frame(i, i * 0.25, scene), ()))
    assert len(ring) == 5 and [e.frame.index for e in ring.since(0)] == [1, 2, 3, 4, 5]
    for i in range(6, 9):
        ring.push(RingEntry(make_frame(i, 1.25 + (i - 5) * 1.0, scene), ()))
    # then only frames of the last 2 s (by t_mono) remain
    assert [e.frame.index for e in ring.since(0)] == [6, 7, 8] and ring.newest_t == T0 + 4.25
    assert [e.frame.index for e in ring.since(T0 + 3.0)] == [7, 8]
    ring.clear()
    assert len(ring) == 0 and ring.newest_t is None and ring.since(0) == []


# --- recording real clips ----------------------------------------------------------------------------------

@pytest.mark.parametrize("start_delay_s", [0.0, 3.0])
def test_scripted_interaction_gives_a_browser_playable_clip_with_pre_and_post_roll(
        tmp_path: Path, scene: Image, start_delay_s: float) -> None:
    # given frames at an irregular ~8 fps for 14 s, and an interaction from t=6 to t=10 (pre 2 s, post 1 s),
    # whose start() the pipeline calls start_delay_s late
    config = ClipConfig(pre_roll_s=2.0, post_roll_s=1.0)
    written = Written()
    recorder = ClipRecorder(CAM, config, tmp_path / "clips", written, key=CLIP_KEY, ring_s=2.0 + start_delay_s + 1.0,
                            tz=timezone(timedelta(hours=8)))
    times = jittered_times(14.0)
    started = stopped = False
    # when the script runs
    for i, t in enumerate(times):
        recorder.push(make_frame(i, t, draw_marker(scene, i)), [])
        if not started and t >= 6.0 + start_delay_s:
            recorder.start(participants("i-1"), T0 + 6.0)
            started = True
        if not stopped and t >= 10.0:
            recorder.stop("i-1", T0 + 10.0)
            stopped = True
    assert recorder.open_interactions == []
    recorder.close()
    # then one clip covers t 4..11: first frame the one showing 2 s before the start, last the one ~1 s after
    # the end
    start = max(t for t in times if t <= 4.0)
    expected = [i for i, t in enumerate(times) if start <= t <= 11.0]
    assert len(written.clips) == 1
    clip = written.clips[0]
    assert clip.frames == len(expected) and clip.dropped_frames == 0
    assert clip.pre_roll_frames == sum(1 for t in times if start <= t < 6.0)
    assert clip.duration_s == pytest.approx(times[expected[-1]] - times[expected[0]], abs=1e-6)
    assert clip.started_at == CAPTURED_T0 + timedelta(seconds=times[expected[0]])
    assert clip.ended_at == CAPTURED_T0 + timedelta(seconds=times[expected[-1]])
    # the file: <camera>/<local date of the first frame>/<clip_id>.mp4, its sha256, no .part beside it
    assert clip.path == (tmp_path / "clips" / CAM / "2026-03-15" / f"{clip.clip_id}.mp4").resolve()
    data = plaintext(clip.path)  # the index describes the plaintext MP4, stored encrypted
    assert len(clip.clip_id) == 32 and clip.size_bytes == len(data)
    assert clip.sha256 == hashlib.sha256(data).hexdigest()
    assert [p.name for p in clip.path.parent.iterdir()] == [clip.path.name]  # no .part or manifest left
    assert 0 <= data.find(b"moov") < data.find(b"mdat")  # faststart: the index comes first
    # decodable H.264, yuv420p, even size, every frame there in order, timed as captured (variable frame rate)
    video = decode(clip.path)
    assert (video.codec, video.pix_fmt, video.width, video.height) == ("h264", "yuv420p", 320, 240)
    assert [read_marker(image) for image in video.images] == expected
    assert video.pts_s == pytest.approx([times[i] - times[expected[0]] for i in expected], abs=0.002)
    assert video.duration_s == pytest.approx(7.0, abs=0.5)
    stats = recorder.stats
    assert (stats.frames_encoded, stats.clips_written, stats.clips_failed, stats.frames_dropped) == (
        len(expected), 1, 0, 0)


@pytest.mark.parametrize("gap_s", [0.2, 0.7, 0.9, 1.3])
def test_the_pre_roll_covers_pre_roll_s_however_few_frames_a_busy_box_processes(tmp_path: Path, scene: Image,
                                                                                 gap_s: float) -> None:
    # given a box so busy that only one frame every gap_s seconds gets processed (the reader drops the rest),
    # a 2 s pre-roll and a ring of pre-roll + start_after_s, as the runtime makes it; and an interaction that
    # started at t=10, confirmed (start() called) at the first frame 2 s later
    written = Written()
    recorder = ClipRecorder(CAM, ClipConfig(pre_roll_s=2.0, post_roll_s=0.0), tmp_path, written, key=CLIP_KEY,
                            ring_s=2.0 + 2.0)
    times = [round(i * gap_s, 4) for i in range(int(16 / gap_s))]
    started = False
    for i, t in enumerate(times):
        if not started and t >= 12.0:
            recorder.start(participants("A"), T0 + 10.0)
            started = True
        recorder.push(make_frame(i, t, draw_marker(scene, i)), [])
        if t >= 14.0:
            recorder.stop("A", T0 + 14.0)
            break
    recorder.close()
    # then the clip begins with the frame that was showing 2 s before the start: the last one at or before t=8,
    # so it shows at least the configured pre-roll, and less than one frame more
    (clip,) = written.clips
    first = max(i for i, t in enumerate(times) if t <= 8.0)
    assert clip.started_at == CAPTURED_T0 + timedelta(seconds=times[first])
    assert 2.0 <= 10.0 - times[first] < 2.0 + gap_s
    assert clip.pre_roll_frames == sum(1 for t in times if times[first] <= t < 10.0)
    assert read_marker(decode(clip.path).images[0]) == first


def test_two_overlapping_recordings_blur_each_others_people(tmp_path: Path, photo: Photo,
                                                             engine_small_faces: FaceEngine) -> None:
    # given a real 640x360 frame of two people (left track 1, right track 3) and their detected faces
    image = np.hstack([fit(photo("obama.jpg"), 320, 360), fit(photo("biden.jpg")[:1300], 320, 360)])
    faces = sorted(((float(x1), float(y1), float(x2), float(y2))
                    for x1, y1, x2, y2 in engine_small_faces.detect(image).xyxy), key=lambda b: b[0])
    assert len(faces) == 2
    left = ClipPerson(1, (20.0, 0.0, 300.0, 360.0), faces[0])
    right = ClipPerson(3, (340.0, 0.0, 620.0, 360.0), faces[1])
    written = Written()
    recorder = ClipRecorder(CAM, ClipConfig(pre_roll_s=0.5, post_roll_s=0.5), tmp_path, written, key=CLIP_KEY)
    # when interaction A (staff 1, customer 2) runs from t=0.5 to 2 and B (staff 3, customer 4) from 1 to 3
    for i in range(30):
        t = i * 0.125
        recorder.push(make_frame(i, t, image), [left, right])
        if i == 4:
            recorder.start(participants("A", 1, 2), T0 + t)
        if i == 8:
            recorder.start(participants("B", 3, 4), T0 + t)
        if i == 16:
            recorder.stop("A", T0 + t)
        if i == 24:
            recorder.stop("B", T0 + t)
    recorder.close()
    # then two files; A blurs the right face and keeps the left one, B the opposite
    clips = written.by_interaction()
    assert sorted(clips) == ["A", "B"] and clips["A"].path != clips["B"].path
    assert clips["A"].frames == 21 and clips["B"].frames == 25  # t 0..2.5 and 0.5..3.5
    source = {"left": laplacian_var(image, faces[0]), "right": laplacian_var(image, faces[1])}
    for interaction, blurred, kept in (("A", "right", "left"), ("B", "left", "right")):
        video = decode(clips[interaction].path)
        assert video.codec == "h264" and len(video.images) == clips[interaction].frames
        middle = video.images[len(video.images) // 2]
        box = {"left": faces[0], "right": faces[1]}
        assert laplacian_var(middle, box[blurred]) < 0.1 * source[blurred], interaction
        assert laplacian_var(middle, box[kept]) > 0.4 * source[kept], interaction


def test_a_stored_clip_is_encrypted_private_and_shows_its_faces_only_with_the_key(
        tmp_path: Path, photo: Photo, engine_small_faces: FaceEngine) -> None:
    # given a real frame of two people, both participants of the interaction (so neither face is blurred)
    image = np.hstack([fit(photo("obama.jpg"), 320, 360), fit(photo("biden.jpg")[:1300], 320, 360)])
    assert len(engine_small_faces.detect(image).xyxy) == 2
    written = Written()
    recorder = ClipRecorder(CAM, ClipConfig(pre_roll_s=0.5, post_roll_s=0.5), tmp_path / "clips", written,
                            key=CLIP_KEY)
    # when an interaction is recorded
    for i in range(30):
        recorder.push(make_frame(i, i * 0.125, image), [])
        if i == 4:
            recorder.start(participants("A", 1, 3), T0 + 0.5)
        if i == 20:
            recorder.stop("A", T0 + 2.5)
    recorder.close()
    (clip,) = written.clips
    # then the folders are 0700 and the file 0600
    for folder in (tmp_path / "clips", tmp_path / "clips" / CAM, clip.path.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(clip.path.stat().st_mode) == 0o600
    # and the stored bytes are not an MP4: no box names, PyAV cannot open it, OpenCV reads no frame from it
    stored = clip.path.read_bytes()
    assert not any(box in stored for box in (b"ftyp", b"moov", b"mdat", b"avc1"))
    with pytest.raises(av.FFmpegError):
        av.open(str(clip.path))
    capture = cv2.VideoCapture(str(clip.path))
    try:
        assert not capture.read()[0]
    finally:
        capture.release()
    # but with the clip key a frame decodes and shows both faces
    images = decode(clip.path).images
    assert len(images) == clip.frames
    assert len(engine_small_faces.detect(images[len(images) // 2]).xyxy) == 2


def test_flush_closes_every_open_recording_and_empties_the_ring(tmp_path: Path, scene: Image) -> None:
    # given two open recordings, one of them stopped but still in its post-roll
    written = Written()
    recorder = ClipRecorder(CAM, ClipConfig(pre_roll_s=1.0, post_roll_s=5.0), tmp_path, written, key=CLIP_KEY)
    for i in range(20):
        recorder.push(make_frame(i, i * 0.125, draw_marker(scene, i)), [])
        if i == 8:
            recorder.start(participants("A"), T0 + 1.0)
            recorder.start(participants("B"), T0 + 1.0)
            recorder.start(participants("B"), T0 + 1.0)  # twice: ignored
    recorder.stop("A", T0 + 2.0)
    recorder.stop("nobody", T0 + 1.5)  # unknown: ignored
    # when the source ends
    recorder.flush()
    # then both are closed at once (no frame after the flush joins them), and a new start has no pre-roll
    assert recorder.open_interactions == []
    recorder.push(make_frame(20, 2.5, draw_marker(scene, 20)), [])
    recorder.start(participants("C"), T0 + 2.5)
    recorder.close()
    recorder.close()  # twice: harmless
    clips = written.by_interaction()
    assert sorted(clips) == ["A", "B", "C"]
    for key in ("A", "B"):
        assert clips[key].frames == 20 and clips[key].pre_roll_frames == 8
        assert [read_marker(im) for im in decode(clips[key].path).images] == list(range(20))
    assert clips["C"].frames == 1 and clips["C"].pre_roll_frames == 0


def test_max_clip_s_cuts_a_runaway_recording(tmp_path: Path, scene: Image, caplog: pytest.LogCaptureFixture) -> None:
    # given a 2 s cap / when an interaction never stops
    written = Written()
    recorder = ClipRecorder(CAM, ClipConfig(pre_roll_s=0.0, max_clip_s=2.0), tmp_path, written, key=CLIP_KEY)
    with caplog.at_level(logging.WARNING, logger="edge.clips.recorder"):
        for i in range(40):
            recorder.push(make_frame(i, i * 0.125, scene), [])
            if i == 5:
                recorder.start(participants("A"), T0 + 0.625)
    # then it was closed after 2 s, the cut is counted and logged, and a late stop does nothing
    assert recorder.open_interactions == [] and recorder.stats.clips_cut == 1
    assert "clip cut" in caplog.text
    recorder.stop("A", T0 + 5.0)
    recorder.close()
    (clip,) = written.clips
    assert clip.duration_s == pytest.approx(2.0, abs=1e-6) and clip.frames == 17  # t 0.625..2.625
    assert decode(clip.path).duration_s == pytest.approx(2.0, abs=0.5)


class SlowWriter(Mp4Writer):
    """A real PyAV writer that takes 40 ms more per frame: an encoder that cannot keep up."""

    def write(self, image: Image, t_mono: float) -> None:
        time.sleep(0.04)
        super().write(image, t_mono)


def test_a_full_encoder_queue_drops_and_counts_frames_instead_of_blocking(tmp_path: Path, scene: Image) -> None:
    # given a queue of 3 frames and an encoder slower than the camera
    written = Written()
    config = ClipConfig(pre_roll_s=0.5, post_roll_s=0.0, queue_size=3)
    recorder = ClipRecorder(CAM, config, tmp_path, written, key=CLIP_KEY,
                            writer_factory=lambda path, cfg, key: SlowWriter(path, key=key, preset=cfg.preset,
                                                                             crf=cfg.crf))
    frames = [make_frame(i, i * 0.125, draw_marker(scene, i)) for i in range(40)]
    # when 40 frames are pushed as fast as they come, during one recording
    began = time.perf_counter()
    for frame in frames:
        recorder.push(frame, [])
        if frame.index == 5:
            recorder.start(participants("A"), frame.t_mono)
        if frame.index == 39:
            recorder.stop("A", frame.t_mono)
    pushing_s = time.perf_counter() - began
    # then no push waited for the encoder (that would take >= 30 x 40 ms), frames were dropped and counted,
    # and the clip is still whole
    assert pushing_s < 0.4
    stats = recorder.stats
    assert stats.frames_dropped > 10
    recorder.close()
    (clip,) = written.clips
    assert clip.dropped_frames == recorder.stats.frames_dropped
    assert clip.frames + clip.dropped_frames == 39 and clip.pre_roll_frames == 4  # frames 1..39
    markers = [read_marker(im) for im in decode(clip.path).images]
    assert markers[:5] == [1, 2, 3, 4, 5] and markers == sorted(markers) and len(markers) == clip.frames


def test_an_unwritable_clip_folder_is_logged_and_never_raises(tmp_path: Path, scene: Image,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    # given a clip folder below a regular file (root can write anywhere else)
    (tmp_path / "not-a-dir").write_text("x")
    written = Written()
    recorder = ClipRecorder(CAM, ClipConfig(pre_roll_s=1.0), tmp_path / "not-a-dir" / "clips", written, key=CLIP_KEY)
    # when an interaction is recorded
    with caplog.at_level(logging.ERROR, logger="edge.clips.worker"):
        for i in range(20):
            recorder.push(make_frame(i, i * 0.125, scene), [])
            if i == 10:
                recorder.start(participants("A"), T0 + 1.25)
        recorder.stop("A", T0 + 1.5)
        recorder.close()
    # then nothing was raised or written, the failure is counted and logged
    assert written.clips == [] and recorder.stats.clips_failed == 1
    assert "failed while encoding" in caplog.text
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["not-a-dir"]


class DiskFullWriter(Mp4Writer):
    """A real PyAV writer whose disk fills up at the 26th frame, once the .part file exists (the muxer creates
    it with the first packet, which libx264 gives after its lookahead)."""

    seen: list[bool] = []  # noqa: RUF012 - test record: did the .part exist when the disk filled?

    def write(self, image: Image, t_mono: float) -> None:
        if self.frames == 25:
            DiskFullWriter.seen.append(self.path.exists() and self.path.name.endswith(".mp4.part"))
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        super().write(image, t_mono)


def test_a_disk_error_mid_clip_deletes_the_part_file_and_later_clips_still_work(
        tmp_path: Path, scene: Image, caplog: pytest.LogCaptureFixture) -> None:
    # given a writer that fails for the first clip only
    written = Written()
    writers: list[Mp4Writer] = []

    DiskFullWriter.seen.clear()

    def factory(path: Path, cfg: ClipConfig, key: bytes) -> Mp4Writer:
        writer = (DiskFullWriter if not writers else Mp4Writer)(path, key=key, preset=cfg.preset, crf=cfg.crf)
        writers.append(writer)
        return writer

    recorder = ClipRecorder(CAM, ClipConfig(pre_roll_s=0.0, post_roll_s=0.0), tmp_path, written, key=CLIP_KEY,
                            writer_factory=factory)
    # when two interactions are recorded one after the other
    with caplog.at_level(logging.ERROR, logger="edge.clips.worker"):
        for i in range(60):
            recorder.push(make_frame(i, i * 0.125, scene), [])
            if i in (0, 40):
                recorder.start(participants(f"I{i}"), T0 + i * 0.125)
            if i in (30, 55):
                recorder.stop(f"I{i - 30 if i == 30 else 40}", T0 + i * 0.125)
        recorder.close()
    # then the first failed with its .part (which existed) deleted, the second was written
    assert DiskFullWriter.seen == [True] and "No space left" in caplog.text
    assert [c.participants.interaction_id for c in written.clips] == ["I40"]
    assert recorder.stats.clips_failed == 1 and recorder.stats.clips_written == 1
    assert not list(tmp_path.rglob("*.part")) and len(list(tmp_path.rglob("*.mp4"))) == 1


@pytest.mark.parametrize("enabled", [False, True])
def test_disabled_or_idle_recorders_start_no_thread_and_write_nothing(tmp_path: Path, scene: Image,
                                                                      enabled: bool) -> None:
    # given a disabled recorder, or one never asked to record / when frames come and it is closed
    before = {t.name for t in threading.enumerate()}
    written = Written()
    recorder = ClipRecorder(CAM, ClipConfig(enabled=enabled), tmp_path, written, key=CLIP_KEY)
    for i in range(5):
        recorder.push(make_frame(i, i * 0.1, scene), [])
    if not enabled:
        recorder.start(participants("A"), T0)
        recorder.stop("A", T0)
    # then no encoder thread ran and nothing was written
    assert {t.name for t in threading.enumerate()} - before == set()
    recorder.close()
    assert written.clips == [] and list(tmp_path.iterdir()) == []
