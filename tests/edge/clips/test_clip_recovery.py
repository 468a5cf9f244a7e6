"""``kill -9`` during a recorded service, then a start of the service: the interaction is closed as interrupted,
its clip is salvaged, indexed and playable, and nothing unfinished is left; clips of older versions, written in
plain, are encrypted at start. The killed process is a real one (:mod:`tests.edge.clip_killee`)."""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import cv2
import httpx
import pytest

from edge.clips.encoder import Mp4Writer, finalise_clip
from edge.clips.manifest import ClipManifest, manifest_path, part_path, write_manifest
from edge.clips.types import ClipParticipants, InteractionRecord
from edge.config import EdgeConfig
from edge.review.store import ReviewStore
from edge.store.datadir import open_data_folder
from tests.edge.clip_helpers import CAPTURED_T0, decode, draw_marker, fit, plaintext, read_marker
from tests.edge.clip_killee import INTERACTION, START_AT
from tests.edge.conftest import ADMIN_TOKEN, LiveEdge
from tests.edge.review_helpers import clip_written, write_h264
from vault.clip_file import CLIP_KEY_PURPOSE, ClipReader, ClipWriter, is_clip_file
from vision.types import Image

ROOT = Path(__file__).resolve().parents[3]
Photo = Callable[[str], Image]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def kill_while_recording(data_dir: Path, photo: Path, timeout_s: float = 180.0) -> None:
    """Run the recording process until it says a whole fragment is on disk, then SIGKILL it."""
    child = subprocess.Popen([sys.executable, "-m", "tests.edge.clip_killee", str(data_dir), str(photo)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = ""
        while time.monotonic() < deadline and child.poll() is None:
            ready, _, _ = select.select([child.stdout], [], [], 0.5)
            if ready:
                line = child.stdout.readline()
                break
        assert line.startswith("RECORDING"), f"the recording process did not start recording: {line!r}"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL


def leftovers(clips_dir: Path) -> list[str]:
    """Files under the clip folder that are not published clips."""
    return sorted(p.name for p in clips_dir.rglob("*") if p.is_file() and not p.name.endswith(".mp4"))


@pytest.mark.slow
def test_a_service_killed_mid_clip_is_closed_and_its_clip_salvaged_at_the_next_start(
        tmp_path: Path, photos_dir: Path, make_config: Callable[..., EdgeConfig],
        live_edge: Callable[..., LiveEdge]) -> None:
    # given a process killed with SIGKILL while it recorded an open interaction
    data_dir = tmp_path / "data"
    kill_while_recording(data_dir, photos_dir / "t1.jpg")
    clips_dir = data_dir / "clips"
    assert {name.split(".", 1)[1] for name in leftovers(clips_dir)} == {"mp4.part", "json.part"}
    # when the service starts on its data folder
    edge = live_edge(make_config())
    runtime = edge.runtime
    # then nothing unfinished is left, and folders and files are private
    assert leftovers(clips_dir) == []
    assert all(stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600) for p in clips_dir.rglob("*"))
    # and the interaction is closed as interrupted, ended at the last frame of its clip
    [record] = runtime.review.list_interactions()
    [clip] = runtime.review.list_clips()
    assert record.participants.interaction_id == clip.participants.interaction_id == INTERACTION
    assert record.interrupted and record.ended_at == clip.ended_at
    assert record.duration_s == pytest.approx((clip.ended_at - record.started_at).total_seconds(), abs=1e-3)
    # and the salvaged clip is indexed as the plaintext MP4 it holds, and decodes: every frame from the
    # pre-roll on, in order
    mp4 = plaintext(clip.path, runtime.clip_key)
    assert (clip.size_bytes, clip.sha256) == (len(mp4), hashlib.sha256(mp4).hexdigest())
    assert 0 <= mp4.find(b"moov") < mp4.find(b"mdat")
    markers = [read_marker(image) for image in decode(clip.path, runtime.clip_key).images]
    first = START_AT - 4  # 0.5 s of pre-roll at 8 fps
    assert len(markers) == clip.frames >= 8 and clip.pre_roll_frames == 4
    assert markers == [(first + k) % 256 for k in range(len(markers))]
    assert clip.started_at == CAPTURED_T0 + timedelta(seconds=first * 0.125)
    # and OpenCV reads it too (written in plain here, for OpenCV, which reads files only)
    (tmp_path / "salvaged.mp4").write_bytes(mp4)
    capture = cv2.VideoCapture(str(tmp_path / "salvaged.mp4"))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert decoded == clip.frames
    # and the review API plays it
    played = httpx.get(f"{edge.http}/api/clips/{clip.id}/video", headers={**ADMIN, "Range": "bytes=0-99"})
    assert played.status_code == 206 and played.content == mp4[:100]
    # and the statistics count the service, interrupted and not ongoing, with no service time
    stats = httpx.get(f"{edge.http}/api/stats", headers=ADMIN,
                      params={"date_from": "2026-03-14", "date_to": "2026-03-16"}).json()
    [row] = stats["by_staff"]
    assert (row["interactions"], row["ongoing"], row["interrupted"], row["median_service_s"]) == (1, 0, 1, None)


def test_a_recording_is_on_disk_one_fragment_behind_the_muxer_even_for_a_still_scene(tmp_path: Path,
                                                                                     photo: Photo) -> None:
    # given a recording of a still real scene (fragments of a few hundred bytes) at 8 fps, its writer open
    key = hashlib.sha256(b"k").digest()
    part = tmp_path / "c.mp4.part"
    writer = Mp4Writer(part, key=key, preset="veryfast", crf=23)
    image = fit(photo("t1.jpg"), 1280, 720)
    for i in range(78):
        writer.write(draw_marker(image, i), 1000 + i * 0.125)
    # when what is on disk now (what a kill -9 would leave: the file is written unbuffered) is salvaged
    shutil.copyfile(part, tmp_path / "killed.mp4.part")
    done = finalise_clip(tmp_path / "killed.mp4.part", tmp_path / "killed.mp4", key, salvage=True)
    # then it holds every frame the muxer got, in order, but those of the fragment still open (about 1 s of
    # the clip's time; the frames x264 still holds back are not counted, they depend on the host's cores)
    markers = [read_marker(im) for im in decode(tmp_path / "killed.mp4", key).images]
    assert markers == list(range(done.frames)) and writer.muxed - done.frames <= 2 * 8
    writer.abort()


def killed_leftovers(data_dir: Path, *, fragments: bool) -> tuple[ReviewStore, bytes, Path]:
    """What a process killed right after an interaction started leaves: the open interaction, its manifest and
    an unfinished clip (one whole chunk of fMP4 bytes without a final chunk when ``fragments``, else nothing
    but the header). Also a stray ``.part`` without a manifest and a temporary file. Written with the real
    store and clip writer, then the folder is closed as a killed process would leave it."""
    folder = open_data_folder(data_dir, branch_id="test-branch", clips_dir=data_dir / "clips")
    review = ReviewStore(folder.store)
    key = folder.key.derive(CLIP_KEY_PURPOSE)
    participants = ClipParticipants("i-early", "counter-1", 1, 2, "staff-a", None)
    review.add_interaction(InteractionRecord(participants, CAPTURED_T0, None, None, None))
    final = data_dir / "clips" / "counter-1" / "2026-03-15" / "c-early.mp4"
    final.parent.mkdir(parents=True)
    write_manifest(manifest_path(final), ClipManifest("c-early", participants, CAPTURED_T0, 0), key)
    writer = ClipWriter.create(part_path(final), key)
    if fragments:
        writer.write(bytes(70_000))  # a chunk, but no MP4 box in it
    writer.discard()
    (final.parent / "stray.mp4.part").write_bytes(b"no manifest")
    (final.parent / "c-old.mp4.tmp").write_bytes(b"x")
    folder.close()
    return review, key, final


@pytest.mark.parametrize("fragments", [False, True])
def test_a_recording_killed_before_its_first_fragment_is_removed_and_its_interaction_closed(
        tmp_path: Path, make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge],
        fragments: bool) -> None:
    # given what a process killed right after an interaction started leaves
    data_dir = tmp_path / "data"
    killed_leftovers(data_dir, fragments=fragments)
    # when the service starts
    runtime = live_edge(make_config()).runtime
    # then there is no clip, nothing unfinished is left, and the interaction is closed at its start
    assert runtime.review.list_clips() == [] and leftovers(data_dir / "clips") == []
    [record] = runtime.review.list_interactions()
    assert record.interrupted and record.ended_at == record.started_at and record.duration_s == 0.0


def test_plain_clips_of_an_older_version_are_encrypted_at_start_and_still_play(
        tmp_path: Path, make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge]) -> None:
    # given a clip an older version wrote in plain (0644 in a 0755 folder) and indexed
    data_dir = tmp_path / "data"
    folder = open_data_folder(data_dir, branch_id="test-branch", clips_dir=data_dir / "clips")
    path = write_h264(data_dir / "clips" / "counter-1" / "2026-03-02" / "c-old.mp4", frames=12)
    path.chmod(0o644)
    path.parent.chmod(0o755)
    mp4 = path.read_bytes()
    ReviewStore(folder.store).add_clip(clip_written(path, "c-old"))
    folder.close()
    # when the service starts
    edge = live_edge(make_config())
    # then the file is encrypted in place, private, and holds exactly the indexed MP4
    assert is_clip_file(path) and mp4[4:8] not in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with ClipReader(path, edge.runtime.clip_key) as reader:
        assert reader.read() == mp4
    clip = edge.runtime.review.get_clip("c-old")
    assert clip is not None and clip.sha256 == hashlib.sha256(mp4).hexdigest() and clip.size_bytes == len(mp4)
    # and it plays through the review API as before
    played = httpx.get(f"{edge.http}/api/clips/c-old/video", headers=ADMIN)
    assert played.status_code == 200 and played.content == mp4
