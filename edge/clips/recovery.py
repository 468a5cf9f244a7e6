"""Start-up recovery of the clip folder and the interactions, run before any camera starts.

A process killed with ``kill -9`` (or a power cut) during a service leaves the interaction open in the
database and its clip half-written: a ``.part`` file of fragmented MP4 and the clip's manifest. At the next
start, before the cameras run:

1. Leftover temporary files (``*.tmp``, ``*.enc-tmp``) are removed; folders are made 0700 and files 0600.
2. Each ``.part`` is **salvaged**: its whole fragments are remuxed into a normal clip (encrypted, index
   first) and indexed with the manifest's facts; a clip that was already published but not yet indexed is
   indexed. The ``.part`` and manifest are then removed; one with nothing to keep (no whole fragment yet, no
   readable manifest) is removed and counted as lost. No ``.part`` file survives a start.
3. Plain MP4 clips written by versions before clip encryption are encrypted in place (atomically; the index
   keeps its sha256 and size, which are of the plaintext). They are migrated rather than served as they are
   because a plain clip on disk is exactly the exposure the encryption removes.
4. Every interaction still open is closed as **interrupted**, ended at the last frame of its latest clip
   (salvaged ones included) or at its start (:meth:`ReviewStore.close_interrupted_interactions`), so that
   the statistics no longer count it as ongoing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from edge.clips.encoder import ENCODER_ERRORS, Finalised, finalise_clip, inspect_clip
from edge.clips.manifest import MANIFEST_SUFFIX, PART_SUFFIX, ClipManifest, final_path, manifest_path, read_manifest
from edge.clips.types import ClipWritten
from edge.errors import ClipFileError
from edge.review.store import ReviewStore
from vault.clip_file import encrypt_plain_file, is_clip_file

logger = logging.getLogger(__name__)

TEMP_SUFFIXES = (".tmp", ".enc-tmp")


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    salvaged: int  # clips finished at this start from a recording whose process was killed
    indexed: int  # published clips whose index row was missing
    lost: int  # recordings with nothing to keep
    encrypted: int  # plain clips of an older version encrypted in place
    interrupted: int  # interactions closed as interrupted


def recover_clips(review: ReviewStore, clips_dir: Path, key: bytes) -> RecoveryReport:
    """Put the clip folder and the open interactions right (see the module's doc). Call it once at start,
    before any camera runs. ``key`` is the clip key."""
    salvaged = indexed = lost = encrypted = 0
    if clips_dir.is_dir():
        _tighten_and_clean(clips_dir)
        for part in sorted(clips_dir.rglob(f"*{PART_SUFFIX}")):
            outcome = _recover_part(review, part, key)
            salvaged += outcome == "salvaged"
            indexed += outcome == "indexed"
            lost += outcome == "lost"
        for manifest in sorted(clips_dir.rglob(f"*{MANIFEST_SUFFIX}")):  # no .part: published, maybe unindexed
            indexed += _recover_published(review, manifest, key) == "indexed"
        encrypted = _encrypt_plain_clips(clips_dir, key)
    closed = review.close_interrupted_interactions()
    for record in closed:
        logger.warning("interaction %s on camera %s was left open by a stopped process; closed as interrupted at "
                       "%s", record.participants.interaction_id, record.participants.camera_id,
                       record.ended_at.isoformat() if record.ended_at else "?")
    report = RecoveryReport(salvaged, indexed, lost, encrypted, len(closed))
    if any((salvaged, indexed, lost, encrypted, closed)):
        logger.warning("clip recovery: %s", report)
    return report


def _tighten_and_clean(clips_dir: Path) -> None:
    for folder, _, files in os.walk(clips_dir):
        _chmod(Path(folder), 0o700)
        for name in files:
            path = Path(folder) / name
            if name.endswith(TEMP_SUFFIXES):
                path.unlink(missing_ok=True)
                logger.info("removed the leftover temporary clip file %s", path)
            else:
                _chmod(path, 0o600)


def _chmod(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except FileNotFoundError:
        return


def _recover_part(review: ReviewStore, part: Path, key: bytes) -> str:
    final = final_path(part)
    manifest_file = manifest_path(final)
    try:
        manifest = read_manifest(manifest_file, key)
    except (FileNotFoundError, ClipFileError) as exc:
        logger.error("unfinished clip %s has no readable manifest (%s); it cannot be indexed and is removed",
                     part, exc)
        _remove(part, manifest_file)
        return "lost"
    if final.exists():  # killed after the clip was published: the .part is no longer needed
        outcome = _recover_published(review, manifest_file, key, manifest)
        part.unlink(missing_ok=True)
        return outcome
    try:
        done = finalise_clip(part, final, key, salvage=True)
    except ENCODER_ERRORS as exc:
        logger.warning("unfinished clip %s of interaction %s has nothing to keep (%s); removed", part,
                       manifest.participants.interaction_id, exc)
        final.with_name(final.name + ".tmp").unlink(missing_ok=True)
        _remove(part, manifest_file)
        return "lost"
    _index(review, final, manifest, done)
    logger.warning("clip %s of interaction %s salvaged from a recording that was stopped: %s frames, %.1f s",
                   manifest.clip_id, manifest.participants.interaction_id, done.frames, done.span_s)
    _remove(part, manifest_file)
    return "salvaged"


def _recover_published(review: ReviewStore, manifest_file: Path, key: bytes,
                       manifest: ClipManifest | None = None) -> str:
    """A manifest whose clip was published: index the clip if its row is missing, then drop the manifest."""
    final = manifest_file.with_name(manifest_file.name[:-len(MANIFEST_SUFFIX)] + ".mp4")
    outcome = "kept"
    try:
        manifest = manifest or read_manifest(manifest_file, key)
        if final.exists() and review.get_clip(manifest.clip_id) is None:
            _index(review, final, manifest, inspect_clip(final, key))
            outcome = "indexed"
    except ENCODER_ERRORS as exc:
        logger.error("clip %s could not be indexed at start: %s", final, exc)
    manifest_file.unlink(missing_ok=True)
    return outcome


def _index(review: ReviewStore, final: Path, manifest: ClipManifest, done: Finalised) -> None:
    ended = manifest.started_at + timedelta(seconds=done.span_s)
    review.add_clip(ClipWritten(
        clip_id=manifest.clip_id, participants=manifest.participants, path=final.resolve(), sha256=done.sha256,
        size_bytes=done.size_bytes, started_at=manifest.started_at, ended_at=ended, duration_s=done.span_s,
        frames=done.frames, pre_roll_frames=min(manifest.pre_roll_frames, done.frames)))


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _encrypt_plain_clips(clips_dir: Path, key: bytes) -> int:
    done = 0
    for path in sorted(clips_dir.rglob("*.mp4")):
        try:
            if not path.is_file() or is_clip_file(path):
                continue
            encrypt_plain_file(path, key)
        except OSError as exc:  # a full disk: the clip stays as it is until the next start
            logger.error("plain clip %s could not be encrypted: %s", path, exc)
            continue
        done += 1
    if done:
        logger.warning("encrypted %s plain clip file(s) written before clips were encrypted", done)
    return done
