"""What a clip being recorded is about, kept beside its ``.part`` file so that a clip whose process was killed
can still be indexed at the next start.

The encoder thread writes ``<clip_id>.json.part`` (encrypted like the clip: it names the interaction, the
staff member and the VIP) before the clip's first frame, and deletes it with the ``.part`` file once the clip
is published and indexed. The start-up recovery (:mod:`edge.clips.recovery`) reads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from edge.clips.types import ClipParticipants
from edge.errors import ClipFileError
from vault.clip_file import ClipReader, encrypt_bytes

PART_SUFFIX = ".mp4.part"
MANIFEST_SUFFIX = ".json.part"


def part_path(final: Path) -> Path:
    """``<dir>/<clip_id>.mp4`` -> ``<dir>/<clip_id>.mp4.part``."""
    return final.with_name(final.stem + PART_SUFFIX)


def manifest_path(final: Path) -> Path:
    return final.with_name(final.stem + MANIFEST_SUFFIX)


def final_path(part: Path) -> Path:
    """``<dir>/<clip_id>.mp4.part`` -> ``<dir>/<clip_id>.mp4``."""
    if not part.name.endswith(PART_SUFFIX):
        raise ValueError(f"{part} is not a clip being recorded")
    return part.with_name(part.name[:-len(PART_SUFFIX)] + ".mp4")


@dataclass(frozen=True, slots=True)
class ClipManifest:
    clip_id: str
    participants: ClipParticipants
    started_at: datetime  # capture time (UTC) of the clip's first frame
    pre_roll_frames: int


def write_manifest(path: Path, manifest: ClipManifest, key: bytes) -> None:
    """Write ``manifest`` to the new file ``path`` (encrypted, 0600, fsynced; via a temporary name)."""
    body = {"clip_id": manifest.clip_id, "participants": asdict(manifest.participants),
            "started_at": manifest.started_at.isoformat(), "pre_roll_frames": manifest.pre_roll_frames}
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    encrypt_bytes(json.dumps(body).encode("utf-8"), tmp, key)
    os.replace(tmp, path)


def read_manifest(path: Path, key: bytes) -> ClipManifest:
    """Raises :class:`ClipFileError` for a manifest that does not open with ``key`` or is malformed."""
    with ClipReader(path, key) as reader:
        data = reader.read()
    try:
        body = json.loads(data)
        started = datetime.fromisoformat(body["started_at"])
        if started.tzinfo is None:
            raise ValueError("started_at has no time zone")
        return ClipManifest(str(body["clip_id"]), ClipParticipants(**body["participants"]), started,
                            int(body["pre_roll_frames"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ClipFileError(f"clip manifest {path} is malformed: {exc}") from exc
