"""A native face model is used by one thread only, while cameras run and requests enrol at the same time.

Enrolling while a camera ran crashed the service (two threads inside dlib's HOG detector of one instance).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import EdgeConfig
from edge.runtime import EdgeRuntime
from tests.edge.conftest import config_dict
from vision.engines.base import DlibEngineConfig, FaceEngine
from vision.engines.registry import build_engine
from vision.enrolment import embed_largest_face
from vision.types import Detections, FloatArray, Image

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


def cameras(video: Path, n: int) -> list[dict[str, Any]]:
    return [{"id": f"entrance-{i}", "name": f"{i}号门", "role": "entrance",
             "source": {"url": f"file:{video}", "fps": 10, "loop": True}} for i in range(n)]


class RecordingEngine:
    """A real engine that records which threads enter it and whether two were ever inside at once."""

    def __init__(self, inner: FaceEngine) -> None:
        self._inner = inner
        self._guard = threading.Lock()
        self._inside = 0
        self.threads: set[int] = set()
        self.overlaps = 0
        self.calls = 0

    def _enter(self) -> None:
        with self._guard:
            self.calls += 1
            self.threads.add(threading.get_ident())
            if self._inside > 0:  # refuse rather than let two threads into dlib (which would crash the runner)
                self.overlaps += 1
                raise RuntimeError("two threads inside one engine instance")
            self._inside += 1

    def _leave(self) -> None:
        with self._guard:
            self._inside -= 1

    def _call(self, fn: Callable[[], Any]) -> Any:
        self._enter()  # raises without entering when another thread is inside
        try:
            return fn()
        finally:
            self._leave()

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    @property
    def dim(self) -> int:
        return self._inner.dim

    @property
    def min_face_px(self) -> int:
        return self._inner.min_face_px

    @property
    def landmark_layout(self) -> Any:
        return self._inner.landmark_layout

    def detect(self, image: Image) -> Detections:
        return self._call(lambda: self._inner.detect(image))  # type: ignore[no-any-return]

    def fit(self, image: Image, boxes: FloatArray, scores: FloatArray | None = None) -> Detections:
        return self._call(lambda: self._inner.fit(image, boxes, scores))  # type: ignore[attr-defined, no-any-return]

    def embed(self, image: Image, dets: Detections) -> FloatArray:
        return self._call(lambda: self._inner.embed(image, dets))  # type: ignore[no-any-return]

    def chips(self, image: Image, dets: Detections) -> list[Image]:
        return self._call(lambda: self._inner.chips(image, dets))  # type: ignore[no-any-return]

    def embed_chips(self, chips: list[Image]) -> FloatArray:
        return self._call(lambda: self._inner.embed_chips(chips))  # type: ignore[no-any-return]


@pytest.fixture()
def recorded_runtime(make_config: Callable[..., EdgeConfig], walk_in_video: Path
                     ) -> Iterator[tuple[EdgeRuntime, RecordingEngine]]:
    recorder = RecordingEngine(build_engine(DlibEngineConfig()))
    runtime = EdgeRuntime(make_config(cameras=cameras(walk_in_video, 2)), engine=recorder)
    yield runtime, recorder
    runtime.stop()


def test_cameras_and_requests_never_share_an_engine_instance(
        recorded_runtime: tuple[EdgeRuntime, RecordingEngine], photo_bytes: Callable[[str], bytes],
        photo: Callable[[str], Image]) -> None:
    # given two entrance cameras running on one engine instance handed to the runtime
    runtime, recorder = recorded_runtime
    runtime.start()
    errors: list[BaseException] = []

    def enrol(name: str, file: str, extra: str | None) -> None:
        try:
            person = runtime.enroller.enrol(name=name, tier="金卡", photo=photo_bytes(file), consent="测试")
            if extra is not None:
                runtime.enroller.add_photo(person_id=person.id, photo=photo_bytes(extra))
        except BaseException as exc:
            errors.append(exc)

    def evaluate() -> None:
        try:
            for name in ("t1.jpg", "obama3.jpg", "tom_hanks.png"):
                embed_largest_face(runtime.engine, photo(name))
        except BaseException as exc:
            errors.append(exc)

    # when requests enrol, add photos and evaluate faces from several threads while the cameras detect
    threads = [threading.Thread(target=enrol, args=("奥巴马", "obama.jpg", "obama2.jpg")),
               threading.Thread(target=enrol, args=("拜登", "biden.jpg", None)),
               threading.Thread(target=evaluate), threading.Thread(target=evaluate)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    # then every call reached the instance from one thread, never two at once, and everything succeeded
    assert errors == []
    assert recorder.calls > 20
    assert recorder.overlaps == 0
    assert len(recorder.threads) == 1
    photos = {p.name: runtime.store.count_person_photos(p.id) for p in runtime.store.list_persons()}
    assert len(runtime.gallery) == 2 and photos == {"奥巴马": 2, "拜登": 1}  # the two enrolled in either order
    assert all(w.processed > 0 for w in runtime.workers) and sum(w.errors for w in runtime.workers) == 0


def test_a_branch_survives_enrolments_add_photos_and_evaluations_while_cameras_run(
        tmp_path: Path, walk_in_video: Path, photos_dir: Path) -> None:
    # given a whole edge runtime (the configured engine pool, two owners) with three cameras running
    config = config_dict(tmp_path / "data", cameras(walk_in_video, 3))
    config["face"] = {"engine_instances": 2}
    path = tmp_path / "smartbranch.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    # when two threads enrol and add photos and two evaluate faces for a while, in a child process
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-m", "tests.edge.faces.engine_stress", str(path), str(photos_dir), "12"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    # then nothing crashed (a segfault is returncode -11) and every kind of work was done
    assert child.returncode == 0, child.stderr[-3000:]
    summary = json.loads(child.stdout.strip().splitlines()[-1])
    assert summary["failures"] == []
    outcomes = summary["outcomes"]
    assert outcomes.get("enrolled", 0) >= 1 and outcomes.get("evaluated", 0) >= 3
    assert outcomes.get("photo_added", 0) + outcomes.get("add_photo_refused", 0) >= 1
    assert all(n > 0 for n in summary["processed"].values()) and summary["camera_errors"] == 0
    assert len(summary["owners"]) == 2


def test_a_runtime_that_fails_to_assemble_releases_its_folder(
        make_config: Callable[..., EdgeConfig], tmp_path: Path) -> None:
    # given a config whose face engine cannot be built (an empty model folder)
    from edge.store.datadir import FolderLock
    from models.errors import ModelPackError

    config = make_config(face={"engine": {"type": "insightface", "models_dir": str(tmp_path / "no-models")},
                               "voter": {"threshold": 0.5}})
    # when a runtime is made on it
    with pytest.raises(ModelPackError):
        EdgeRuntime(config)
    # then the data folder is free again: a key rotation could take it at once
    FolderLock(config.paths.data_dir, exclusive=True).release()
