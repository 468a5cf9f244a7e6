"""The data folder as one whole: its parts must agree before the box may start on it.

A data folder holds the database (``edge.db`` and its ``-wal``/``-shm``), the gallery files
(``gallery/``), the clips and, when the key is not in ``$SMARTBRANCH_DATA_KEY``, the key file
(``data.key``). :func:`open_data_folder` is the one way in (the service, the enrolment and plate
commands, key rotation). It refuses, with a :class:`~edge.errors.DataFolderError` that says what is wrong
and what to do, rather than start on a folder where it would lose or misread data:

- the database is missing while gallery files, clips or a WAL remain (a deleted ``edge.db``: starting
  would make an empty one and then overwrite the gallery with an empty gallery);
- the gallery files were written under another database (their epoch is not the store's);
- data is stored but no key is configured, or the configured key is not the one the data was encrypted
  with (the store records the key's id in ``meta``; one stored value of every encrypted column is also
  decrypted). A key is created only for a folder with nothing encrypted in it.

It also finishes a key rotation that was committed but not yet switched over (:mod:`edge.store.rotation`), keeps the
folder 0700 and the files it knows 0600, and holds a shared lock on the folder for as long as the folder is
open, so that a key rotation (which takes it exclusively) never runs beside the service.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import InvalidToken

from edge.store import datadir_text as text
from edge.store.db import Store
from edge.store.reencrypt import sample_encrypted
from edge.store.rekey_journal import clean_leftovers, replay_journal
from vault.errors import KeyMaterialError
from vault.keys import GALLERY_MAC_PURPOSE, KEY_ENV, KEY_FILE, DataKey, configured_key, file_key, write_key_file
from vision.errors import GalleryAuthError, GalleryBindingError, GalleryError, GalleryUnsealedError
from vision.gallery import Gallery
from vision.gallery_files import GallerySeal, gallery_files, map_files, peek_context

logger = logging.getLogger(__name__)

DB_FILE = "edge.db"
DB_COMPANIONS = ("edge.db-wal", "edge.db-shm")
GALLERY_DIR = "gallery"
LOCK_FILE = ".lock"
META_KEY_ID = "key_id"
META_PREVIOUS_KEY_ID = "key_previous_id"  # the key before the last rotation, named in a refusal
META_GALLERY_REJECTED = "gallery_rejected"  # the last gallery files refused as not authentic, and where they went
META_GALLERY_FILE = "gallery_file"  # the sub-folder of gallery/ that holds the gallery in use (set by sync)
GALLERY_VERSION_DIR = re.compile(r"sync-[0-9]{1,20}-[0-9a-f]{8}")  # the names such a sub-folder may have


@dataclass(frozen=True, slots=True)
class FolderParts:
    """What a data folder holds, looked at before anything is opened or created."""

    db: bool
    db_companions: tuple[str, ...]
    key_file: bool
    gallery_files: tuple[str, ...]
    clips: bool

    @property
    def orphaned(self) -> bool:
        """Parts that only exist beside a database, without one."""
        return not self.db and bool(self.db_companions or self.gallery_files or self.clips)


def survey(data_dir: Path, clips_dir: Path) -> FolderParts:
    gallery = data_dir / GALLERY_DIR
    gallery_files: tuple[str, ...] = ()
    if gallery.is_dir():  # the files of gallery/ and of its version folders (a console sync writes those)
        gallery_files = tuple(sorted(str(p.relative_to(gallery)) for p in gallery.iterdir() if p.is_file())) + tuple(
            sorted(str(p.relative_to(gallery)) for d in gallery.iterdir()
                   if d.is_dir() and GALLERY_VERSION_DIR.fullmatch(d.name) for p in d.iterdir() if p.is_file()))
    clips = clips_dir.is_dir() and any(p.is_file() for p in clips_dir.rglob("*"))
    return FolderParts(db=(data_dir / DB_FILE).exists(),
                       db_companions=tuple(n for n in DB_COMPANIONS if (data_dir / n).exists()),
                       key_file=(data_dir / KEY_FILE).exists(), gallery_files=gallery_files, clips=clips)


def make_private(path: Path) -> None:
    """Folders 0700, files 0600: tightened when an older version left them readable by others."""
    want = 0o700 if path.is_dir() else 0o600
    try:
        if path.stat().st_mode & 0o777 != want:
            path.chmod(want)
            logger.info("mode of %s set to %o", path, want)
    except FileNotFoundError:
        return
    except PermissionError as exc:
        logger.warning("cannot make %s private (mode %o): %s", path, want, exc)


class FolderLock:
    """An advisory lock on the data folder: shared by every process that uses it, exclusive for a rotation."""

    def __init__(self, data_dir: Path, *, exclusive: bool) -> None:
        path = data_dir / LOCK_FILE
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._fd)
            self._fd = None
            raise (text.folder_busy(data_dir) if exclusive else text.rotation_running(data_dir)) from exc

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


class DataFolder:
    """An open, consistent data folder: the store, its key, and what the gallery files are sealed with."""

    def __init__(self, path: Path, clips_dir: Path, key: DataKey, store: Store, lock: FolderLock) -> None:
        self.path = path
        self.clips_dir = clips_dir
        self.key = key
        self.store = store
        self._lock = lock

    @property
    def gallery_root(self) -> Path:
        return self.path / GALLERY_DIR

    @property
    def gallery_dir(self) -> Path:
        """The folder of the gallery in use: ``gallery/`` itself, or the versioned sub-folder that the meta row
        ``gallery_file`` names (a console sync writes each new gallery beside the old one and moves this pointer
        in the same transaction as the rows, so rows and gallery change together)."""
        return gallery_dir_of(self.store, self.path)

    @property
    def gallery_seal(self) -> GallerySeal:
        """The gallery files' MAC key (derived from the data key for this purpose only), bound to the epoch."""
        return gallery_seal(self.key, self.store.epoch)

    def load_gallery(self, model_id: str, dim: int) -> Gallery | None:
        """The saved gallery of ``model_id``, authenticated; None when it must be built from the enrolment
        photos (no files, another model, unreadable, or not authentic).

        Files that are not authentic (edited, or written under another key) are never used and never
        overwritten: they are moved aside into ``gallery/rejected-<time>/`` and the refusal is logged as an
        error and recorded in ``meta``. The rebuild that follows reads only the encrypted enrolment photos,
        which the key check has just shown to decrypt (Fernet authenticates them), so the greeting comes
        from data an intruder cannot forge without the key. Files bound to another epoch refuse the start.
        """
        try:
            return Gallery.load(self.gallery_dir, model_id, dim, seal=self.gallery_seal)
        except GalleryBindingError as exc:
            path = gallery_files(self.gallery_dir, model_id)[0]
            raise text.epoch_mismatch(self.path, path, peek_context(path) or "?", self.store.epoch) from exc
        except GalleryAuthError as exc:
            self._reject_gallery(model_id, exc)
        except GalleryError as exc:
            logger.warning("gallery unusable (%s); rebuilding from the enrolment photos", exc)
        return None

    def _reject_gallery(self, model_id: str, exc: GalleryAuthError) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self.gallery_dir / f"rejected-{stamp}"
        aside.mkdir(mode=0o700)
        for path in gallery_files(self.gallery_dir, model_id):
            path.rename(aside / path.name)
        self.store.set_meta(META_GALLERY_REJECTED, json.dumps({"at": stamp, "model_id": model_id,
                                                               "reason": str(exc), "moved_to": str(aside)}))
        if isinstance(exc, GalleryUnsealedError):
            logger.warning("gallery files of %s carry no MAC (%s); moved to %s and rebuilt from the enrolment "
                           "photos", model_id, exc, aside)
        else:
            logger.error("gallery files of %s are not authentic and were NOT used (%s); moved to %s for "
                         "inspection, rebuilding from the encrypted enrolment photos", model_id, exc, aside)

    def close(self) -> None:
        self.store.engine.dispose()
        for name in (DB_FILE, *DB_COMPANIONS):
            make_private(self.path / name)
        self._lock.release()


def gallery_dir_of(store: Store, data_dir: Path) -> Path:
    """The gallery folder ``store``'s meta points to under ``data_dir`` (``gallery/`` when it points nowhere; a
    pointer that is not a version folder's name is ignored, so it can never lead outside ``gallery/``)."""
    pointer = store.meta(META_GALLERY_FILE)
    root = data_dir / GALLERY_DIR
    if pointer is None or not GALLERY_VERSION_DIR.fullmatch(pointer):
        return root
    return root / pointer


def gallery_seal(key: DataKey, epoch: str) -> GallerySeal:
    return GallerySeal(key.derive(GALLERY_MAC_PURPOSE), epoch)


def open_data_folder(data_dir: Path, *, branch_id: str, clips_dir: Path | None = None,
                     exclusive: bool = False) -> DataFolder:
    """Open ``data_dir`` for the service (or, ``exclusive``, for a key rotation); DataFolderError when the
    box must not start on it. ``clips_dir`` defaults to ``data_dir/clips``."""
    clips = clips_dir if clips_dir is not None else data_dir / "clips"
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    make_private(data_dir)
    lock = FolderLock(data_dir, exclusive=exclusive)
    try:
        return _open_locked(data_dir, clips, branch_id, lock)
    except BaseException:
        lock.release()
        raise


def _open_locked(data_dir: Path, clips_dir: Path, branch_id: str, lock: FolderLock) -> DataFolder:
    parts = survey(data_dir, clips_dir)
    if parts.orphaned:
        raise text.db_missing(data_dir, parts, clips_dir)
    for name in (DB_FILE, *DB_COMPANIONS, KEY_FILE, LOCK_FILE):
        make_private(data_dir / name)
    while True:
        configured = configured_key(data_dir)
        key = configured or DataKey.generate()
        store = Store(data_dir / DB_FILE, branch_id=branch_id, cipher=key.fernet)
        try:
            if replay_journal(store):  # a committed rotation switched over: the key file may have changed
                store.engine.dispose()
                continue
            clean_leftovers(store, data_dir, clips_dir)
            key = _check_key(store, configured, key, data_dir)
            _check_gallery_epochs(store, data_dir)
        except FileExistsError:  # another process made the key file first: use that one
            store.engine.dispose()
            continue
        except BaseException:
            store.engine.dispose()
            raise
        for path in [data_dir / GALLERY_DIR, *map_files(data_dir / GALLERY_DIR)]:
            make_private(path)
        return DataFolder(data_dir, clips_dir, key, store, lock)


def _check_key(store: Store, configured: DataKey | None, key: DataKey, data_dir: Path) -> DataKey:
    """The key to use: ``configured`` when it is the data's key, a new key file for a folder with nothing
    encrypted in it; DataFolderError otherwise."""
    stored_id = store.meta(META_KEY_ID)
    samples = sample_encrypted(store)
    if configured is None:
        if stored_id is not None or samples:
            raise text.key_missing(data_dir, stored_id)
        write_key_file(data_dir / KEY_FILE, key)
        logger.warning("no $%s set and nothing encrypted yet: created key file %s (key id %s). Keep a copy "
                       "of it, or move it into the environment variable.", KEY_ENV, data_dir / KEY_FILE,
                       key.key_id)
        store.set_meta(META_KEY_ID, key.key_id)
        return DataKey(key.raw, str(data_dir / KEY_FILE))
    if stored_id is not None and stored_id != configured.key_id:
        raise text.key_mismatch(data_dir, configured, stored_id, _other_source(configured, data_dir, stored_id),
                                store.meta(META_PREVIOUS_KEY_ID))
    for label, blob in samples:
        try:
            configured.fernet.decrypt(blob)
        except InvalidToken as exc:
            if stored_id is None:  # an older folder without a key id: the data itself says the key is wrong
                raise text.key_mismatch(data_dir, configured, None, None) from exc
            raise text.blob_undecryptable(data_dir, label) from exc
    if stored_id is None:
        store.set_meta(META_KEY_ID, configured.key_id)
        logger.info("data folder %s: key id %s recorded", data_dir, configured.key_id)
    return configured


def _other_source(configured: DataKey, data_dir: Path, stored_id: str) -> str | None:
    """Where the right key is, when the other place the box looks holds it (env vs. key file)."""
    if not configured.source.startswith("$"):
        return None
    try:
        other = file_key(data_dir)
    except KeyMaterialError:  # only a hint for the message: an unreadable key file is no hint
        return None
    return str(data_dir / KEY_FILE) if other is not None and other.key_id == stored_id else None


def _check_gallery_epochs(store: Store, data_dir: Path) -> None:
    for path in map_files(data_dir / GALLERY_DIR):
        context = peek_context(path)
        if context is not None and context != store.epoch:
            raise text.epoch_mismatch(data_dir, path, context, store.epoch)
