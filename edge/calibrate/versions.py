"""Versions of the edge config file: every save through the calibration page is one numbered version.

A save validates the new text with the same config models the service loads (a config that would not load is
never written), replaces the file atomically, and records the new text with who saved it, when, a summary and
the unified diff against the file it replaced. The first save also records the file as it was (version 1), and
a file changed by hand since the last recorded version is recorded first, so that every state the service ran
with can be returned to. Only the newest ``keep`` versions are kept. A rollback is a save of an older version's
text (itself a new version), so it can be undone the same way. One lock orders the saves of one store.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge.config import EdgeConfig
from edge.config_edit import write_config_text
from edge.errors import ConfigError

logger = logging.getLogger(__name__)

OUTSIDE = "changed outside the calibration page"
ORIGINAL = "the config as it was before the first calibration save"
_NAME = re.compile(r"^(\d{6})\.yaml$")


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    at: str  # ISO 8601, UTC
    user: str
    summary: str
    diff: str  # unified diff against the text it replaced ('' for the first)


@dataclass(frozen=True, slots=True)
class SaveResult:
    version: int
    config: EdgeConfig
    diff: str
    previous: str  # the text that was replaced


def unified_diff(old: str, new: str, name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"{name} (before)", tofile=f"{name} (after)"))


class ConfigVersions:
    """The versions of one config file, kept in the folder ``<file>.versions`` beside it."""

    def __init__(self, path: Path, keep: int = 20) -> None:
        if keep < 2:
            raise ValueError("keep at least 2 versions (the current one and one to roll back to)")
        self.path = path
        self.keep = keep
        self.folder = path.with_name(f"{path.name}.versions")
        self._lock = threading.Lock()

    def current_text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {self.path}: {exc}") from exc

    def history(self) -> list[VersionInfo]:
        """The kept versions, newest first."""
        return [self._info(n) for n in sorted(self._numbers(), reverse=True)]

    def text(self, version: int) -> str:
        file = self.folder / f"{version:06d}.yaml"
        try:
            return file.read_text(encoding="utf-8")
        except FileNotFoundError:
            kept = sorted(self._numbers())
            raise ConfigError(f"version {version} is not kept (kept: {kept or 'none'})") from None
        except OSError as exc:
            raise ConfigError(f"cannot read version {version}: {exc}") from exc

    def save(self, new_text: str, *, user: str, summary: str) -> SaveResult:
        """Validate and write ``new_text`` as the config, recorded as a new version."""
        with self._lock:
            return self._save(new_text, user=user, summary=summary)

    def rollback(self, version: int, *, user: str) -> SaveResult:
        """Make ``version``'s text the config again (recorded as a new version)."""
        with self._lock:
            return self._save(self.text(version), user=user, summary=f"rollback to version {version}")

    # -- inside the lock ------------------------------------------------------------------------
    def _save(self, new_text: str, *, user: str, summary: str) -> SaveResult:
        old = self.current_text()
        numbers = sorted(self._numbers())
        config = write_config_text(self.path, new_text)  # validates first; nothing written when it would not load
        if not numbers:
            self._record(1, old, user="", summary=ORIGINAL, diff="")
            numbers = [1]
        elif self.text(numbers[-1]) != old:
            last = self.text(numbers[-1])
            self._record(numbers[-1] + 1, old, user="", summary=OUTSIDE, diff=unified_diff(last, old, self.path.name))
            numbers.append(numbers[-1] + 1)
        diff = unified_diff(old, new_text, self.path.name)
        version = numbers[-1] + 1
        self._record(version, new_text, user=user, summary=summary, diff=diff)
        self._prune()
        logger.info("config %s saved as version %s by %s: %s", self.path, version, user, summary)
        return SaveResult(version, config, diff, old)

    def _record(self, version: int, text: str, *, user: str, summary: str, diff: str) -> None:
        self.folder.mkdir(mode=0o700, exist_ok=True)
        info = VersionInfo(version, datetime.now(UTC).isoformat(), user, summary, diff)
        for suffix, content in ((".json", json.dumps(asdict(info), ensure_ascii=False)), (".yaml", text)):
            final = self.folder / f"{version:06d}{suffix}"
            tmp = final.with_name(f".{final.name}.tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, final)  # the .yaml last: a version is listed only once its metadata exists

    def _prune(self) -> None:
        for n in sorted(self._numbers())[:-self.keep]:
            for suffix in (".yaml", ".json"):
                (self.folder / f"{n:06d}{suffix}").unlink(missing_ok=True)

    def _numbers(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return [int(m.group(1)) for f in self.folder.iterdir() if (m := _NAME.match(f.name))]

    def _info(self, version: int) -> VersionInfo:
        try:
            raw = json.loads((self.folder / f"{version:06d}.json").read_text(encoding="utf-8"))
            return VersionInfo(**raw)
        except (OSError, ValueError, TypeError):
            return VersionInfo(version, "", "", "(metadata missing)", "")
