"""The gallery on disk: a FAISS index file and an authenticated id map, written atomically.

The id map (``gallery-<model>.ids.json``) says who owns each vector. Whoever can edit it can make the
camera greet one person by another's name, so it is authenticated: it carries an HMAC-SHA256 over its
own content, which names the index file and that file's sha256, and over a *context* string that binds
the files to one store (at the edge: the store's epoch). The MAC key is given by the caller as bytes
(:class:`GallerySeal`); this module never knows where it comes from.

Writes are atomic as a whole. The index is written first under a name made from its own sha256
(``gallery-<model>.<sha16>.faiss``, temp file, fsync, rename), then the id map is replaced the same way:
that rename is the one moment the gallery changes. A crash before it leaves the old map, which still
names the old index; stale index files are removed after the switch. Files are created 0600, folders 0700.

Reading checks, in this order: the MAC (:class:`GalleryAuthError`: absent, edited, or another key), the
context (:class:`GalleryBindingError`), the model and dimension (:class:`GalleryError`: rebuild it) and
the index file's sha256 (:class:`GalleryAuthError`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vision.errors import GalleryAuthError, GalleryBindingError, GalleryError, GalleryUnsealedError

FORMAT = 2
MAP_SUFFIX = ".ids.json"
MIN_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class GallerySeal:
    """What authenticates gallery files: a MAC key used for nothing else, and the context they belong to."""

    key: bytes = field(repr=False)
    context: str

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise GalleryError(f"a gallery MAC key needs at least {MIN_KEY_BYTES} bytes, got {len(self.key)}")

    def sign(self, body: dict[str, Any]) -> str:
        return hmac.new(self.key, _canonical(body), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class GalleryContent:
    """What the files hold, once authenticated: the id map's fields and the serialised index."""

    model_id: str
    dim: int
    next_id: int
    owner: dict[int, str]
    index_blob: bytes


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def safe_name(model_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)


def map_path(folder: Path, model_id: str) -> Path:
    return folder / f"gallery-{safe_name(model_id)}{MAP_SUFFIX}"


def _index_pattern(model_id: str) -> re.Pattern[str]:
    return re.compile(rf"gallery-{re.escape(safe_name(model_id))}(\.[0-9a-f]{{16}})?\.faiss")


def index_files(folder: Path, model_id: str) -> list[Path]:
    """Every index file of ``model_id`` in ``folder`` (current, stale, or of the older unsealed format)."""
    if not folder.is_dir():
        return []
    pattern = _index_pattern(model_id)
    return sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name))


def gallery_files(folder: Path, model_id: str) -> list[Path]:
    """The id map (when present) and every index file of ``model_id`` in ``folder``."""
    path = map_path(folder, model_id)
    return ([path] if path.exists() else []) + index_files(folder, model_id)


def map_files(folder: Path) -> list[Path]:
    """The id maps of every model in ``folder``."""
    return sorted(folder.glob(f"gallery-*{MAP_SUFFIX}")) if folder.is_dir() else []


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a 0600 temp file, fsync it, rename it, and fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk or a failed rename leaves no temp file behind
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_gallery(folder: Path, *, model_id: str, dim: int, next_id: int, owner: dict[int, str],
                  index_blob: bytes, seal: GallerySeal) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = hashlib.sha256(index_blob).hexdigest()
    index_name = f"gallery-{safe_name(model_id)}.{digest[:16]}.faiss"
    new_index = folder / index_name
    existed = new_index.exists()
    atomic_write(new_index, index_blob)
    body: dict[str, Any] = {"format": FORMAT, "model_id": model_id, "dim": dim, "next": next_id,
                            "owner": {str(k): v for k, v in owner.items()}, "index_file": index_name,
                            "index_sha256": digest, "context": seal.context}
    try:
        atomic_write(map_path(folder, model_id), json.dumps({**body, "mac": seal.sign(body)}).encode("utf-8"))
    except BaseException:  # the old id map still names the old index: drop the new one nobody names
        if not existed:
            new_index.unlink(missing_ok=True)
        raise
    for stale in index_files(folder, model_id):
        if stale.name != index_name:
            stale.unlink(missing_ok=True)


def _read_map(path: Path, seal: GallerySeal) -> dict[str, Any]:
    """The id map's authenticated fields (the MAC checked and removed, the context checked)."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GalleryError(f"gallery id map {path} is unreadable: {exc}") from exc
    if not isinstance(body, dict):
        raise GalleryError(f"gallery id map {path} is unreadable: not a JSON object")
    mac = body.pop("mac", None)
    if not isinstance(mac, str):
        raise GalleryUnsealedError(f"gallery id map {path} carries no MAC (written by an older version, or the MAC "
                               "was removed); it cannot be shown authentic")
    if not hmac.compare_digest(mac, seal.sign(body)):
        raise GalleryAuthError(f"gallery id map {path} is not authentic: its MAC does not verify (the file was "
                               "edited, or written under another data key)")
    if body.get("context") != seal.context:
        raise GalleryBindingError(f"gallery files {path} belong to context {body.get('context')}, "
                                  f"not {seal.context}")
    return body


def read_gallery(folder: Path, model_id: str, dim: int, seal: GallerySeal) -> GalleryContent | None:
    """The authenticated content of ``model_id``'s gallery in ``folder``; None when it has no files."""
    path = map_path(folder, model_id)
    if not path.exists():
        if index_files(folder, model_id):
            raise GalleryError(f"gallery files in {folder} are unreadable: the id map {path.name} is missing")
        return None
    body = _read_map(path, seal)
    if body.get("model_id") != model_id or body.get("dim") != dim:
        raise GalleryError(f"gallery in {folder} was built for {body.get('model_id')} ({body.get('dim')}-d), "
                           f"not {model_id} ({dim}-d); rebuild it")
    name = str(body.get("index_file"))
    if not _index_pattern(model_id).fullmatch(name):
        raise GalleryAuthError(f"gallery id map {path} names an index file {name!r} of another gallery")
    try:
        blob = (folder / name).read_bytes()
    except OSError as exc:
        raise GalleryError(f"gallery files {folder / name} / {path} are unreadable: {exc}") from exc
    if hashlib.sha256(blob).hexdigest() != body.get("index_sha256"):
        raise GalleryAuthError(f"gallery index {folder / name} is not the one its id map {path.name} names "
                               "(sha256 differs)")
    try:
        owner = {int(k): str(v) for k, v in body["owner"].items()}
        next_id = int(body["next"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GalleryError(f"gallery id map {path} is unreadable: {exc}") from exc
    return GalleryContent(model_id, dim, next_id, owner, blob)


def reseal_map(path: Path, *, old: GallerySeal, new: GallerySeal, dest: Path) -> None:
    """Write to ``dest`` the id map at ``path``, authenticated under ``new`` instead of ``old`` (key
    rotation); refuses (GalleryAuthError) a map that ``old`` does not authenticate. The index is unchanged."""
    body = _read_map(path, old)
    body["context"] = new.context
    atomic_write(dest, json.dumps({**body, "mac": new.sign(body)}).encode("utf-8"))


def peek_context(path: Path) -> str | None:
    """The context an id map claims, unauthenticated (for a quick consistency check before the key is
    known); None for a map of the older format or one that cannot be read."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    context = body.get("context") if isinstance(body, dict) else None
    return context if isinstance(context, str) else None
