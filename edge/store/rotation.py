"""Key rotation: moves everything the data key protects to a new key (the command: :mod:`edge.cli.keys`).

What the key protects: every encrypted column of the database (enrolment photos, extra photos, alert
snapshots, and any column declared ``info=ENCRYPTED``), the MAC of the gallery id maps, and the clip files
(whose key is derived from the data key). The rotation is all or nothing (:mod:`edge.store.rekey_journal`):

1. the folder is opened exclusively (a running service or enrolment command makes it refuse) and with the
   current key, which must be the data's key;
2. every new file is written beside the old one under a ``.rekey`` name: the new key file (when the key
   lives in ``data.key``), each gallery id map sealed under the new key, each clip re-encrypted;
3. one database transaction re-encrypts every encrypted value and records the new key's id and the list of
   renames still to do: the commit point;
4. the renames are made and the journal is cleared.

A crash before 3 leaves the old key working (the leftovers are removed at the next start); a crash after it
leaves the new key working (the next start makes the remaining renames).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge.errors import ClipFileError
from edge.store import datadir_text as text
from edge.store.datadir import META_KEY_ID, META_PREVIOUS_KEY_ID, DataFolder, gallery_seal, open_data_folder
from edge.store.reencrypt import reencrypt
from edge.store.rekey_journal import (
    META_PENDING,
    META_STARTED,
    REKEY_SUFFIX,
    clean_leftovers,
    journal,
    replay_journal,
    staged,
)
from vault.clip_file import CLIP_KEY_PURPOSE, is_clip_file, reencrypt_clip_file
from vault.keys import KEY_FILE, DataKey, write_key_file
from vision.errors import GalleryAuthError
from vision.gallery_files import map_files, reseal_map

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RotationPlan:
    """What step 2 wrote: the renames to make once the database has committed."""

    new: DataKey
    renames: tuple[tuple[Path, Path], ...]
    gallery_maps: int
    clips: int


@dataclass(frozen=True, slots=True)
class RotationReport:
    key_id: str
    previous_key_id: str
    values: int  # encrypted database values re-encrypted
    gallery_maps: int
    clips: int
    key_file: Path | None  # the key file now holding the new key; None when the key is in the environment


def rotate_key(data_dir: Path, *, branch_id: str, clips_dir: Path, new: DataKey) -> RotationReport:
    """Move the data folder from its current key to ``new``, all or nothing; DataFolderError when the folder
    is in use, the current key is not the data's, or something cannot be moved (then nothing changed)."""
    folder = open_data_folder(data_dir, branch_id=branch_id, clips_dir=clips_dir, exclusive=True)
    try:
        previous = folder.key.key_id
        plan = prepare_rotation(folder, new)
        values = commit_rotation(folder, plan)
        replay_journal(folder.store)
    finally:
        folder.close()
    key_file = data_dir / KEY_FILE if any(dst == data_dir / KEY_FILE for _, dst in plan.renames) else None
    logger.warning("data key rotated from %s to %s: %s values, %s gallery maps, %s clips", previous, new.key_id,
                   values, plan.gallery_maps, plan.clips)
    return RotationReport(new.key_id, previous, values, plan.gallery_maps, plan.clips, key_file)


def prepare_rotation(folder: DataFolder, new: DataKey) -> RotationPlan:
    """Step 2: write every new file under its ``.rekey`` name; the old files and the database are untouched.
    On failure the staged files are removed again and the error is raised."""
    if new.key_id == folder.key.key_id:
        raise text.same_key(new)
    folder.store.set_meta(META_STARTED, json.dumps({"key_id": new.key_id, "at": datetime.now(UTC).isoformat()}))
    renames: list[tuple[Path, Path]] = []
    try:
        key_file = folder.path / KEY_FILE
        if folder.key.source == str(key_file):
            write_key_file(staged(key_file), new)
            renames.append((staged(key_file), key_file))
        maps = _stage_gallery_maps(folder, new, renames)
        clips = _stage_clips(folder, new, renames)
    except BaseException:
        clean_leftovers(folder.store, folder.path, folder.clips_dir)
        raise
    return RotationPlan(new, tuple(renames), maps, clips)


def _stage_gallery_maps(folder: DataFolder, new: DataKey, renames: list[tuple[Path, Path]]) -> int:
    old_seal, new_seal = folder.gallery_seal, gallery_seal(new, folder.store.epoch)
    paths = map_files(folder.gallery_dir)
    for path in paths:
        try:
            reseal_map(path, old=old_seal, new=new_seal, dest=staged(path))
        except GalleryAuthError as exc:
            raise text.gallery_not_rotatable(path, str(exc)) from exc
        renames.append((staged(path), path))
    return len(paths)


def clip_files(clips_dir: Path) -> list[Path]:
    """Every encrypted clip file under ``clips_dir`` (finished or not), none of the rotation's own files."""
    if not clips_dir.is_dir():
        return []
    return sorted(p for p in clips_dir.rglob("*")
                  if p.is_file() and REKEY_SUFFIX not in p.name and not p.name.endswith(".enc-tmp")
                  and is_clip_file(p))


def _stage_clips(folder: DataFolder, new: DataKey, renames: list[tuple[Path, Path]]) -> int:
    old_key, new_key = folder.key.derive(CLIP_KEY_PURPOSE), new.derive(CLIP_KEY_PURPOSE)
    clips = clip_files(folder.clips_dir)
    for path in clips:
        dest = staged(path)
        with path.open("rb") as src, os.fdopen(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                                               "wb") as dst:
            shutil.copyfileobj(src, dst)
        try:  # the copy is re-encrypted in place (atomically), the original stays as it is until the switch
            reencrypt_clip_file(dest, old_key, new_key)
        except ClipFileError as exc:
            raise text.clip_not_rotatable(path, str(exc)) from exc
        renames.append((dest, path))
    return len(clips)


def commit_rotation(folder: DataFolder, plan: RotationPlan) -> int:
    """Step 3, the commit point: one transaction re-encrypts every encrypted value and records the new key
    and the renames still to do. Returns how many values were re-encrypted."""
    try:
        return reencrypt(folder.store, plan.new.fernet, meta={
            META_KEY_ID: plan.new.key_id, META_PREVIOUS_KEY_ID: folder.key.key_id,
            META_PENDING: journal(list(plan.renames), plan.new.key_id)})
    except BaseException:
        clean_leftovers(folder.store, folder.path, folder.clips_dir)
        raise
