"""Real face photos for the demo, the tests and the benchmarks, taken from registry packages.

The ``face_recognition`` sdist holds ``tests/test_images`` (Obama x3, Biden, partial faces); the
``insightface`` wheel holds ``data/images`` (a group of six, Tom Hanks). Both are fetched with
``pip download`` (the package registry, never a model hub), checked by sha256 and cached.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    member: str
    sha256: str


FR_REQ = "face-recognition==1.3.0"
IF_REQ = "insightface==2.1"
FR_PREFIX = "face_recognition-1.3.0/tests/test_images/"
IF_PREFIX = "insightface/data/images/"

FACE_RECOGNITION_ASSETS = (
    Asset("obama.jpg", FR_PREFIX + "obama.jpg", "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
    Asset("obama2.jpg", FR_PREFIX + "obama2.jpg", "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
    Asset("obama3.jpg", FR_PREFIX + "obama3.jpg", "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
    Asset("biden.jpg", FR_PREFIX + "biden.jpg", "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
    Asset("obama_partial_face.jpg", FR_PREFIX + "obama_partial_face.jpg",
          "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117"),
)
INSIGHTFACE_ASSETS = (
    Asset("t1.jpg", IF_PREFIX + "t1.jpg", "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"),
    Asset("tom_hanks.png", IF_PREFIX + "Tom_Hanks_54745.png",
          "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083"),
)


class AssetError(RuntimeError):
    """The demo photos could not be fetched or did not match their digests."""


def cache_dir() -> Path:
    base = os.environ.get("SMARTBRANCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "smartbranch")
    return Path(base) / "faces"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pip_download(requirement: str, dest: Path, binary: bool) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
           "-d", str(dest), requirement]
    cmd += ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise AssetError(f"pip download {requirement} failed: {result.stderr.strip()[-500:]}")
    files = sorted(dest.iterdir())
    if not files:
        raise AssetError(f"pip download {requirement} produced no file")
    return files[0]


def _read_members(archive: Path, members: dict[str, str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            for member, name in members.items():
                out[name] = zf.read(member)
    else:
        with tarfile.open(archive) as tf:
            for member, name in members.items():
                fh = tf.extractfile(member)
                if fh is None:
                    raise AssetError(f"{member} missing from {archive.name}")
                out[name] = fh.read()
    return out


def _ensure(assets: tuple[Asset, ...], requirement: str, binary: bool, folder: Path) -> None:
    missing = [a for a in assets if not (folder / a.name).is_file()
               or _sha256((folder / a.name).read_bytes()) != a.sha256]
    if not missing:
        return
    logger.info("fetching demo photos from %s", requirement)
    with tempfile.TemporaryDirectory() as tmp:
        archive = _pip_download(requirement, Path(tmp), binary)
        blobs = _read_members(archive, {a.member: a.name for a in missing})
    for asset in missing:
        data = blobs[asset.name]
        if _sha256(data) != asset.sha256:
            raise AssetError(f"{asset.name} from {requirement} does not match its expected sha256")
        # a name of this process's own: two processes fetching at once each rename a whole file into place
        tmp_path = folder / f".{asset.name}.{os.getpid()}.tmp"
        tmp_path.write_bytes(data)
        tmp_path.replace(folder / asset.name)


def ensure_face_photos(folder: Path | None = None) -> Path:
    """Fetch (once) and return the folder holding the real demo photos."""
    target = folder or cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    _ensure(FACE_RECOGNITION_ASSETS, FR_REQ, False, target)
    _ensure(INSIGHTFACE_ASSETS, IF_REQ, True, target)
    return target
