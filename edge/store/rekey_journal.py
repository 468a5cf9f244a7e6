"""How a key rotation is made all or nothing across the database and the files beside it.

A rotation (:mod:`edge.store.rotation`) first records :data:`META_STARTED`, then writes every new file beside the old
one under a ``.rekey`` name (the key file, the gallery id maps, the clips). Then ONE database transaction
re-encrypts every encrypted value, records the new key's id and records the journal
(:data:`META_PENDING`: the renames still to do). That commit is the moment the rotation happens: before it
the old key holds everything, after it the new key does. Then the renames are made and the journal is
cleared.

Whoever opens the folder next (:func:`edge.store.datadir.open_data_folder`) finishes what a crash interrupted: a
journal is replayed (renames are idempotent), and a rotation that started but never committed leaves only
``.rekey`` leftovers, which are removed; the old key still opens the folder then.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from edge.store.db import Store
from vision.gallery_files import sync_folder

logger = logging.getLogger(__name__)

META_STARTED = "rekey_started"
META_PENDING = "rekey_pending"
REKEY_SUFFIX = ".rekey"


def staged(path: Path) -> Path:
    """Where the rotation writes the new version of ``path`` before the switch."""
    return path.with_name(path.name + REKEY_SUFFIX)


def journal(renames: list[tuple[Path, Path]], key_id: str) -> str:
    return json.dumps({"key_id": key_id, "renames": [[str(src), str(dst)] for src, dst in renames]})


def replay_journal(store: Store) -> bool:
    """Finish a committed rotation's renames; True when there was one to finish."""
    raw = store.meta(META_PENDING)
    if raw is None:
        return False
    entry = json.loads(raw)
    folders: set[Path] = set()
    for src, dst in entry["renames"]:
        try:
            os.replace(src, dst)
        except FileNotFoundError:  # renamed before the crash
            continue
        folders.add(Path(dst).parent)
    for folder in folders:
        sync_folder(folder)
    store.delete_meta(META_PENDING)
    store.delete_meta(META_STARTED)
    logger.info("key rotation to key %s switched over (%s files)", entry["key_id"], len(entry["renames"]))
    return True


def clean_leftovers(store: Store, data_dir: Path, clips_dir: Path) -> None:
    """Remove what a rotation that never committed left behind; the old key still holds."""
    if store.meta(META_STARTED) is None:
        return
    removed = 0
    for folder in {data_dir, clips_dir}:
        if folder.is_dir():
            for path in folder.rglob(f"*{REKEY_SUFFIX}*"):  # staged files and their temp files
                path.unlink(missing_ok=True)
                removed += 1
    store.delete_meta(META_STARTED)
    logger.warning("a key rotation was interrupted before its commit: the old key still holds; removed %s "
                   "leftover files", removed)
