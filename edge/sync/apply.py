"""Apply one console change set atomically: rows, face gallery, plate registry and version move together.

The rule: after a crash at any point (``kill -9``), the box holds either the old version or the new one, never a
mix, and the next pull repeats the same ``since`` when it holds the old one. The steps:

1. Embed (outside every lock): a person whose template was made with this box's model is used as sent; otherwise
   (the console sends no template) the box embeds the photos itself on its engine pool. A person whose photos give
   no face is still stored (card, plates) but not in the gallery, and reported in the status (``embed_failures``).
2. Build the new gallery beside the old one (old entries, minus changed and erased persons, plus the new templates)
   and write its MAC-sealed files into a new sub-folder ``gallery/sync-<V>-<random>/``. Nothing points to it yet.
3. ONE SQLite transaction writes the person rows (photos, plates), the erasures, ``meta.gallery_version = V`` and
   ``meta.gallery_file`` = the new sub-folder. Its commit is the one moment the version changes.
4. The in-memory gallery takes the new entries (one lock swap), the enroller saves to the new folder, the plate
   matcher is rebuilt, and the old files are deleted.

A snapshot of several pages is staged in the store page by page (:mod:`edge.sync.stage`) and streamed into the
transaction of step 3, which also empties the stage. A change set with nothing for this branch only moves the
version (one meta row): no gallery is rewritten for changes elsewhere in the bank.

A crash before 3 leaves the pointer on the old files; the unnamed new folder is removed at the next start
(:meth:`GalleryApplier.clean_orphans`). A crash after 3 starts on the new files (the data folder loads the gallery
the meta points to). Local enrolments hold the enroller's lock, so none is lost between 2 and 4.

Erasure removes the person's row, photos (the rows' encrypted blobs; SQLite's secure_delete overwrites the freed
pages and the WAL is checkpointed), plates, gallery entries and the alert snapshots of their alerts, and scrubs
their name, tier, photo URL and plate from the alerts and outbox events that name them (they stay, nameless:
:mod:`edge.store.mentions`). A person a snapshot drops (out of this branch's scope) is scrubbed alike: the box
cannot tell that from an erasure, and it keeps no name of a person it no longer holds.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from edge.faces.enrol import Enroller
from edge.parking.registry import PlateRegistry
from edge.store.datadir import GALLERY_DIR, GALLERY_VERSION_DIR, META_GALLERY_FILE, gallery_dir_of
from edge.store.db import Store
from edge.store.mentions import scrub_persons
from edge.store.tables import AlertRow, MetaRow, PersonPhotoRow, PersonRow, PlateRow, SnapshotRow
from edge.sync.changes import ChangeSet, PersonChange
from edge.sync.rows import write_persons
from edge.sync.stage import SnapshotStage
from edge.sync.tables import META_EMBED_FAILURES, META_ERASED_PENDING, META_VERSION, SyncedPersonRow, create_tables
from vision.engines.base import FaceEngine
from vision.enrolment import embed_photo, mean_template
from vision.gallery import Gallery
from vision.gallery_files import gallery_files
from vision.plates.errors import InvalidPlateError
from vision.plates.grammar import parse
from vision.types import FloatArray

logger = logging.getLogger(__name__)

Refine = Callable[[str, tuple[bytes, ...], tuple[str, ...], FloatArray], FloatArray]
CONSENT = "console"  # the consent record is kept at the console, where the person was enrolled
SNAPSHOT_URL = re.compile(r"/api/snapshots/([0-9a-f]{32})")


def _no_checkpoint(_: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ApplyReport:
    version: int
    stored: int
    erased: int
    dropped: int  # synced persons a snapshot no longer holds (out of scope)
    embed_failures: dict[str, str]
    folder: Path


class GalleryApplier:
    """Applies change sets to one box: its store, data folder, gallery, enroller and plate registry.

    ``checkpoint(name)`` is called at the named moments "gallery_written" (new files on disk, pointer not moved)
    and "committed" (rows and pointer committed, memory not yet swapped): tests kill the process there.
    """

    def __init__(self, *, store: Store, data_dir: Path, gallery: Gallery, engine: FaceEngine, enroller: Enroller,
                 plates: PlateRegistry, checkpoint: Callable[[str], None] = _no_checkpoint) -> None:
        self._store = store
        self._data_dir = data_dir
        self._gallery = gallery
        self._engine = engine
        self._enroller = enroller
        self._plates = plates
        self._checkpoint = checkpoint
        self._lock = threading.Lock()
        self._scrub_listeners: list[Callable[[tuple[str, ...]], None]] = []
        self._refine: Refine | None = None
        create_tables(store.engine)

    # -- what is applied -----------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        value = self._store.meta(META_VERSION)
        return int(value) if value is not None else 0

    def erased_pending(self) -> list[str]:
        return list(json.loads(self._store.meta(META_ERASED_PENDING) or "[]"))

    def embed_failures(self) -> dict[str, str]:
        return dict(json.loads(self._store.meta(META_EMBED_FAILURES) or "{}"))

    def confirmed(self, erased: list[str]) -> None:
        """The console acknowledged these erasures: stop reporting them."""
        with self._store.session() as s, s.begin():
            row = s.get(MetaRow, META_ERASED_PENDING)
            if row is not None:
                row.value = json.dumps([i for i in json.loads(row.value) if i not in set(erased)])

    def synced_ids(self) -> set[str]:
        with self._store.session() as s:
            return set(s.scalars(select(SyncedPersonRow.person_id)))

    def clean_orphans(self) -> list[Path]:
        """Remove version folders nothing points to (a crash between writing the files and the commit)."""
        root = self._data_dir / GALLERY_DIR
        current = gallery_dir_of(self._store, self._data_dir)
        removed: list[Path] = []
        if root.is_dir():
            for path in root.iterdir():
                if path.is_dir() and GALLERY_VERSION_DIR.fullmatch(path.name) and path != current:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
        if removed:
            logger.warning("sync: removed %s gallery folder(s) of an apply that did not commit: %s", len(removed),
                           ", ".join(p.name for p in removed))
        return removed

    # -- applying ------------------------------------------------------------------------------------------------
    def apply(self, changes: ChangeSet) -> ApplyReport:
        """Apply one change set held in memory (a delta page, or a snapshot of one page)."""
        with self._lock:
            if changes.empty and not changes.snapshot:  # changes outside this branch's scope: only the version moves
                return self._advance(changes.version)
            vectors: dict[str, FloatArray] = {}
            failures: dict[str, str] = {}
            for person in changes.persons.values():
                vector, failure = self.embed(person)
                if vector is not None:
                    vectors[person.id] = vector
                if failure is not None:
                    failures[person.id] = failure
            with self._enroller.exclusive():
                return self._commit(changes.version, changes.snapshot, set(changes.persons), changes.erased,
                                    vectors, failures, lambda _s: iter(changes.persons.values()))

    def stage(self, version: int) -> SnapshotStage:
        """A stage for a snapshot of several pages (:mod:`edge.sync.stage`); then :meth:`apply_staged`."""
        return SnapshotStage(self._store, version, self.embed)

    def apply_staged(self, stage: SnapshotStage) -> ApplyReport:
        """Apply a whole staged snapshot in one transaction, which also empties the stage."""
        with self._lock, self._enroller.exclusive():
            return self._commit(stage.version, True, stage.ids(), [], stage.vectors, stage.failures, stage.persons,
                                clear=stage.clear, staged=True)

    def set_refine(self, refine: Refine) -> None:
        """``refine(person_id, photos, consent purposes, template)``: the template the gallery takes for a person
        the console sent (the box keeps live visit shots in it, :mod:`edge.faces.visit_shots`)."""
        self._refine = refine

    def embed(self, person: PersonChange) -> tuple[FloatArray | None, str | None]:
        """(the person's template for this box's engine, or None and why not)."""
        vector, failure = self._embed(person)
        if vector is not None and self._refine is not None:
            vector = self._refine(person.id, tuple(p.data for p in person.photos), person.purposes, vector)
        return vector, failure

    def _embed(self, person: PersonChange) -> tuple[FloatArray | None, str | None]:
        if not person.photos:
            return None, "no_photo"
        if (person.template is not None and person.template_model == self._engine.model_id
                and person.template.shape == (self._engine.dim,)):
            return person.template, None
        found = [v for v in (embed_photo(self._engine, p.data) for p in person.photos) if v is not None]
        if not found:
            logger.error("sync: no photo of person %s gives a face with %s; stored without a gallery entry",
                         person.id, self._engine.model_id)
            return None, "no_face"
        return mean_template(found), None

    def _advance(self, version: int) -> ApplyReport:
        self._store.set_meta(META_VERSION, str(version))
        return ApplyReport(version, 0, 0, 0, {}, gallery_dir_of(self._store, self._data_dir))

    def _commit(self, version: int, snapshot: bool, ids: set[str], erased: list[str], vectors: dict[str, FloatArray],
                failures: dict[str, str], persons: Callable[[Session], Iterator[PersonChange]], *,
                clear: Callable[[Session], None] | None = None, staged: bool = False) -> ApplyReport:
        root = self._data_dir / GALLERY_DIR
        old_dir = gallery_dir_of(self._store, self._data_dir)
        synced = self.synced_ids()
        dropped = (synced - ids) if snapshot else set()
        gone = (set(erased) | dropped) - ids
        new = self._gallery.clone()
        new.remove_many(ids | gone)  # one pass: a snapshot replaces every person at once
        if vectors:  # one FAISS call for the whole change set, not one per person
            new.add_many(list(vectors), np.stack(list(vectors.values())))
        folder = root / f"sync-{version}-{secrets.token_hex(4)}"
        try:
            new.save(folder)
            self._checkpoint("gallery_written")
            scrubbed: tuple[str, ...] = ()
            with self._store.session() as s, s.begin():
                if gone:
                    s.execute(text("PRAGMA secure_delete=ON"))  # freed pages of erased photos are zeroed
                    scrubbed = self._delete_persons(s, gone)
                stored = self._write_persons(s, persons(s), (synced - gone) | ids, staged=staged)
                if clear is not None:
                    clear(s)
                old_failures = json.loads(self._get(s, META_EMBED_FAILURES) or "{}")
                kept = {k: v for k, v in old_failures.items() if k not in ids | gone}
                pending = json.loads(self._get(s, META_ERASED_PENDING) or "[]")
                pending += [i for i in erased if i not in pending]
                self._put(s, META_EMBED_FAILURES, json.dumps({**kept, **failures}))
                self._put(s, META_ERASED_PENDING, json.dumps(pending))
                self._put(s, META_VERSION, str(version))
                self._put(s, META_GALLERY_FILE, folder.name)
            self._checkpoint("committed")
        except BaseException:
            if self._store.meta(META_GALLERY_FILE) != folder.name:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        self._gallery.take(new)
        self._enroller.move_gallery(folder)
        self._plates.reload()
        self._remove_old(old_dir, root)
        if gone:
            self._checkpoint_wal()
        self._tell_scrubbed(scrubbed)
        logger.info("sync: gallery version %s applied (%s persons stored, %s erased, %s dropped, %s not embedded)",
                    version, stored, len(erased), len(dropped), len(failures))
        return ApplyReport(version, stored, len(erased), len(dropped), failures, folder)

    @staticmethod
    def _get(s: Session, key: str) -> str | None:
        row = s.get(MetaRow, key)
        return None if row is None else row.value

    @staticmethod
    def _put(s: Session, key: str, value: str) -> None:
        s.merge(MetaRow(key=key, value=value))

    def add_scrub_listener(self, listener: Callable[[tuple[str, ...]], None]) -> None:
        """``listener(alert_ids)`` after a committed erasure scrubbed those alerts (the hub pushes them again)."""
        self._scrub_listeners.append(listener)

    def _tell_scrubbed(self, alert_ids: tuple[str, ...]) -> None:
        for listener in self._scrub_listeners if alert_ids else []:
            try:
                listener(alert_ids)
            except Exception:  # the erasure is committed; a listener must not undo the apply's report
                logger.exception("sync: a listener of scrubbed alerts failed")

    def _delete_persons(self, s: Session, gone: set[str]) -> tuple[str, ...]:
        ids = list(gone)
        bodies = s.scalars(select(AlertRow.body).where(AlertRow.person_id.in_(ids)))
        snapshots = {m for body in bodies for m in SNAPSHOT_URL.findall(body)}
        if snapshots:
            s.execute(delete(SnapshotRow).where(SnapshotRow.id.in_(snapshots)))
        s.execute(delete(PlateRow).where(PlateRow.person_id.in_(ids)))
        s.execute(delete(PersonPhotoRow).where(PersonPhotoRow.person_id.in_(ids)))
        s.execute(delete(SyncedPersonRow).where(SyncedPersonRow.person_id.in_(ids)))
        s.execute(delete(PersonRow).where(PersonRow.id.in_(ids)))
        return scrub_persons(s, gone).alerts  # their name leaves the alerts and the outbox (edge.store.mentions)

    def _write_persons(self, s: Session, persons: Iterator[PersonChange], console_ids: set[str], *,
                       staged: bool = False) -> int:
        """Write each person (streamed: a staged snapshot is never all in memory; in batches, :mod:`edge.sync.rows`),
        then every plate (a plate the console moved between two of its persons is free only once both were
        written). ``staged``: the photos move from the stage by SQL (:mod:`edge.sync.rows`)."""
        now = datetime.now(UTC)
        plates = write_persons(s, persons, cipher=self._store.cipher, model_id=self._engine.model_id, consent=CONSENT,
                               now=now, staged=staged)
        for person_id, person_plates in plates:
            if person_plates:
                self._write_plates(s, person_id, person_plates, console_ids, now)
        return len(plates)

    def _write_plates(self, s: Session, person_id: str, plates: tuple[tuple[str, str], ...], console_ids: set[str],
                      now: datetime) -> None:
        for raw, _kind in plates:
            try:
                info = parse(raw)
            except InvalidPlateError as exc:
                logger.error("sync: plate %r of person %s is not a valid plate (%s); left out", raw, person_id, exc)
                continue
            owner = s.scalar(select(PlateRow).where(PlateRow.plate == info.text))
            if owner is not None and owner.person_id == person_id:
                continue
            if owner is not None:
                if owner.person_id not in console_ids:
                    logger.error("sync: plate %s of console person %s is registered on this box to local person "
                                 "%s; the local registration is kept", info.text, person_id, owner.person_id)
                    continue
                s.delete(owner)  # the console moved the plate from one of its persons to another
                s.flush()
            s.add(PlateRow(id=secrets.token_hex(16), person_id=person_id, plate=info.text, kind=info.kind.value,
                           created_at=now))
            s.flush()

    def _remove_old(self, old_dir: Path, root: Path) -> None:
        try:
            if old_dir != root:
                shutil.rmtree(old_dir, ignore_errors=True)
            else:  # the files a local enrolment wrote before the first sync
                for path in gallery_files(root, self._engine.model_id):
                    path.unlink(missing_ok=True)
        except OSError as exc:  # the new version is committed; a leftover file is only untidy
            logger.warning("sync: old gallery files in %s not removed: %s", old_dir, exc)

    def _checkpoint_wal(self) -> None:
        """Erased photos must not linger in the WAL: write it back into the (secure_delete) database now."""
        try:
            with self._store.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception as exc:  # a busy reader delays it; SQLite checkpoints on its own later
            logger.warning("sync: WAL checkpoint after an erasure did not run: %s", exc)
