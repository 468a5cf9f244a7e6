"""Camera sources: newest-frame semantics, end of file, failures reported and retried."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cameras.config import SourceConfig
from edge.cameras.sources import FrameSource, open_reader
from edge.errors import SourceError
from tests.fakes import FakeReader


def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def write_video(path: Path, frames: int, fps: float = 20.0, size: tuple[int, int] = (64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (i * 7) % 256, np.uint8))
    writer.release()
    return path


def test_file_source_plays_to_the_end_and_reports_ended(tmp_path: Path) -> None:
    # given a 20-frame video paced at 40 fps, read as fast as the consumer takes frames
    video = write_video(tmp_path / "v.mp4", 20)
    source = FrameSource("cam", SourceConfig(url=f"file:{video}", fps=40, realtime=False))
    source.start()
    seen: list[int] = []
    last = 0
    # when every frame is consumed
    while (frame := source.wait_newer(last, timeout=5)) is not None:
        seen.append(frame.index)
        last = frame.index
        source.mark_consumed(frame.index)
    # then all 20 arrive in order, BGR uint8, and the source is ended and healthy
    assert seen == list(range(1, 21))
    assert source.health().state == "ended" and source.health().healthy
    assert source.health().frames == 20
    source.stop()


def test_live_source_keeps_only_the_newest_frame() -> None:
    # given a fast live camera and a consumer slower than it
    reader = FakeReader(1000, finite=False, fps=100)
    source = FrameSource("cam", SourceConfig(url="rtsp://cam.example/stream"), opener=lambda _cfg: reader)
    source.start()
    first = source.wait_newer(0, timeout=5)
    assert first is not None
    time.sleep(0.2)
    # when the consumer comes back
    newest = source.wait_newer(first.index, timeout=5)
    # then it gets the newest frame, not the next one, and the skipped frames count as dropped
    assert newest is not None and newest.index > first.index + 1
    source.mark_consumed(newest.index)
    source.stop()
    assert source.health().dropped > 0


def test_bad_url_is_unhealthy_and_retried_with_backoff() -> None:
    # given a camera whose URL cannot be opened
    attempts: list[float] = []

    def failing(_cfg: SourceConfig) -> FakeReader:
        attempts.append(time.monotonic())
        raise SourceError("cannot open camera source rtsp://10.0.0.9/none")

    source = FrameSource("cam", SourceConfig(url="rtsp://10.0.0.9/none"), opener=failing)
    # when it runs for a while
    source.start()
    assert wait_for(lambda: len(attempts) >= 3, timeout=10)
    # then it is reported unhealthy with the reason and retried with growing gaps
    health = source.health()
    assert health.state == "reconnecting" and not health.healthy
    assert "cannot open" in (health.error or "")
    assert health.reconnects >= 3
    gaps = np.diff(attempts)
    assert gaps[1] > gaps[0]
    source.stop()


def test_real_unreachable_stream_is_reported_not_raised() -> None:
    # given a real OpenCV capture on a loopback port where nothing listens
    source = FrameSource("cam", SourceConfig(url="http://127.0.0.1:9/nothing.mjpg"))
    source.start()
    assert wait_for(lambda: source.health().reconnects >= 1, timeout=15)
    assert source.health().state == "reconnecting"
    source.stop()
    assert source.health().state == "stopped"


def test_video_file_deleted_mid_run_is_unhealthy_then_recovers(tmp_path: Path) -> None:
    # given a looping video file
    video = write_video(tmp_path / "v.mp4", 10, fps=50)
    source = FrameSource("cam", SourceConfig(url=f"file:{video}", fps=50, loop=True))
    source.start()
    assert source.wait_newer(0, timeout=5) is not None
    # when the file is deleted while it plays
    backup = video.read_bytes()
    video.unlink()
    # then the source reports it unhealthy and keeps retrying
    assert wait_for(lambda: source.health().state == "reconnecting", timeout=10)
    assert "not found" in (source.health().error or "") or "disappeared" in (source.health().error or "")
    # and when the file comes back, frames flow again
    video.write_bytes(backup)
    before = source.health().frames
    assert wait_for(lambda: source.health().frames > before and source.health().state == "ok", timeout=15)
    source.stop()


def test_image_folder_source(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), np.full((20, 30, 3), 50 * i, np.uint8))
    (folder / "notes.txt").write_text("ignored")
    source = FrameSource("cam", SourceConfig(url=f"dir:{folder}", fps=100, realtime=False))
    source.start()
    frames = []
    last = 0
    while (frame := source.wait_newer(last, timeout=5)) is not None:
        frames.append(frame)
        last = frame.index
        source.mark_consumed(last)
    assert [f.image.shape for f in frames] == [(20, 30, 3)] * 3
    source.stop()


@pytest.mark.parametrize(("url", "message"), [
    ("file:/no/such/video.mp4", "not found"),
    ("dir:/no/such/folder", "not found"),
])
def test_open_reader_names_the_missing_path(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_reader(SourceConfig(url=url))


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images"):
        open_reader(SourceConfig(url=f"dir:{tmp_path}"))


def test_read_failure_mid_stream_reconnects() -> None:
    # given a live reader that fails after 5 frames, then a healthy one
    readers = [FakeReader(100, finite=False, fps=200, fail_at=5), FakeReader(1000, finite=False, fps=200)]
    lock = threading.Lock()

    def opener(_cfg: SourceConfig) -> FakeReader:
        with lock:
            return readers.pop(0) if len(readers) > 1 else readers[0]

    source = FrameSource("cam", SourceConfig(url="rtsp://cam.example/s"), opener=opener)
    source.start()
    assert wait_for(lambda: source.health().reconnects >= 1 and source.health().frames > 10, timeout=10)
    assert source.health().state == "ok"
    source.stop()


def test_credentials_in_the_url_never_reach_health_or_description() -> None:
    # given a real capture of an RTSP URL with credentials, on a loopback port where nothing listens
    url = "rtsp://admin:S3cretPass@127.0.0.1:9/x"
    source = FrameSource("cam", SourceConfig(url=url))
    # then its description hides them
    assert source.description == "rtsp://***@127.0.0.1:9/x"
    source.start()
    # when it fails to open
    assert wait_for(lambda: source.health().reconnects >= 1, timeout=30)
    source.stop()
    # then the reason names the camera by its redacted form only
    error = source.health().error or ""
    assert "rtsp://***@127.0.0.1:9/x" in error
    assert "S3cretPass" not in repr(source.health())


def write_text(path: Path, lines: int) -> Path:
    path.write_text("camera list, not a video\n" * lines, encoding="utf-8")
    return path


def not_a_video_files(folder: Path) -> dict[str, Path]:
    """Files that are not videos; FFmpeg renders a long enough .txt file as ANSI art frames."""
    video = write_video(folder / "ok.mp4", 10)
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[:600])
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    noise = folder / "noise.bin"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    ansi = folder / "banner.ans"  # binary ANSI art (CP437 blocks, colour escapes): not UTF-8 text
    ansi.write_bytes(b"\xdb\xb2\xb1 \x1b[31mcamera\x1b[0m \xb0\xdb\n" * 500)
    return {"text": write_text(folder / "cameras.txt", 500), "short text": write_text(folder / "notes.txt", 3),
            "ansi art": ansi,
            "text named .mp4": write_text(folder / "door.mp4", 500), "truncated": truncated, "empty": empty,
            "noise": noise}


@pytest.mark.parametrize("kind", ["text", "short text", "ansi art", "text named .mp4", "truncated", "empty",
                                  "noise"])
def test_a_file_that_is_not_a_video_is_unhealthy_with_the_reason(tmp_path: Path, kind: str) -> None:
    # given a camera whose file source is not a video
    path = not_a_video_files(tmp_path)[kind]
    source = FrameSource("cam", SourceConfig(url=f"file:{path}", fps=50, realtime=False))
    seen: list[str] = []
    # when it runs
    source.start()
    ok = wait_for(lambda: (seen.append(source.health().state) or source.health().reconnects >= 1), timeout=20)
    health = source.health()
    source.stop()
    # then it is unhealthy, says it is not a video (naming the file), never delivered a frame and was never "ok"
    assert ok, health
    assert not health.healthy and health.state == "invalid"
    assert "not a video" in (health.error or "") and path.name in (health.error or "")
    assert health.frames == 0 and "ok" not in seen and "ended" not in seen


def test_a_finite_source_with_no_frame_is_not_ok(tmp_path: Path) -> None:
    # given a file source whose reader opens but yields nothing
    video = write_video(tmp_path / "door.mp4", 5)
    source = FrameSource("cam", SourceConfig(url=f"file:{video}"), opener=lambda _cfg: FakeReader(0))
    source.start()
    # then it is unhealthy with the reason, not "ended" and healthy
    assert wait_for(lambda: source.health().reconnects >= 1, timeout=10)
    health = source.health()
    source.stop()
    assert health.state == "invalid" and not health.healthy
    assert "no decodable frame" in (health.error or "")


class _SilentReader:
    """A live camera that opens but sends nothing until released."""

    finite = False
    fps = 25.0

    def __init__(self) -> None:
        self.release = threading.Event()
        self._n = 0

    def read(self) -> np.ndarray | None:
        self.release.wait()  # blocked, as a capture whose camera sends nothing
        self._n += 1
        time.sleep(0.01)
        return np.full((48, 64, 3), self._n % 256, np.uint8)

    def close(self) -> None:
        self.release.set()


def test_a_live_source_without_a_first_frame_is_not_healthy() -> None:
    # given a live camera that opens but never sends its first frame
    reader = _SilentReader()
    source = FrameSource("cam", SourceConfig(url="rtsp://admin:S3cretPass@cam.example/s"),
                         opener=lambda _cfg: reader, first_frame_timeout_s=0.3)
    source.start()
    # then it starts as "starting", and once the time-out has passed it is reported stalled, with the reason
    assert source.health().state in ("starting", "stalled")
    assert wait_for(lambda: source.health().state == "stalled", timeout=10)
    health = source.health()
    assert not health.healthy and "no frame" in (health.error or "")
    assert "S3cretPass" not in (health.error or "") and "rtsp://***@cam.example/s" in (health.error or "")
    # and when frames arrive, it is ok again
    reader.release.set()
    assert wait_for(lambda: source.health().state == "ok" and source.health().healthy, timeout=10)
    source.stop()


class _BrokenReader(FakeReader):
    """A reader with a bug: the third read raises an error no camera code expects."""

    def read(self) -> np.ndarray | None:
        if self._n == 2:
            raise RuntimeError("decoder state corrupt at rtsp://admin:S3cretPass@cam.example/s")
        return super().read()


def test_an_unexpected_reader_error_is_reported_and_retried_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    # given a live camera whose reader fails with an unexpected error, then a healthy reader
    readers = [_BrokenReader(100, finite=False, fps=200), FakeReader(1000, finite=False, fps=200)]
    source = FrameSource("cam", SourceConfig(url="rtsp://admin:S3cretPass@cam.example/s"),
                         opener=lambda _cfg: readers.pop(0) if len(readers) > 1 else readers[0])
    source.start()
    # then the failure is reported with its reason (redacted), and the camera reconnects and delivers again
    assert wait_for(lambda: source.health().reconnects >= 1 and source.health().frames > 10, timeout=10)
    health = source.health()
    source.stop()
    assert health.state == "ok"
    assert "RuntimeError: decoder state corrupt at rtsp://***@cam.example/s" in caplog.text
    assert "S3cretPass" not in caplog.text


def _decoder_threads() -> int:
    """FFmpeg's decoding threads in this process (libavcodec names them av:CODEC:...)."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            count += (task / "comm").read_text().startswith("av:")
    return count


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")
@pytest.mark.parametrize(("threads", "more"), [(1, False), (2, True)])
def test_a_video_is_decoded_on_the_configured_number_of_ffmpeg_threads(tmp_path: Path, threads: int,
                                                                       more: bool) -> None:
    # given a video, when it is opened with decode_threads (1 by default: the reader's own thread only)
    video = write_video(tmp_path / "v.mp4", 10, size=(320, 240))
    before = _decoder_threads()
    reader = open_reader(SourceConfig(url=f"file:{video}", decode_threads=threads))
    try:
        # then every frame decodes, and FFmpeg started frame threads of its own only when allowed more than one
        assert all(reader.read() is not None for _ in range(10))
        assert (_decoder_threads() > before) is more
    finally:
        reader.close()
    assert SourceConfig(url="rtsp://cam.example/s").decode_threads == 1
