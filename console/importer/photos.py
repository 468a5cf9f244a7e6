"""Where an import's photos come from: a zip file (the web upload and the CLI) or a folder (the CLI).

A zip is checked whole before any job starts, and refused with a clear error when it is unsafe:

- a name that is absolute (``/x``, ``C:x``) or climbs out (``../evil.jpg``): refused, although nothing is ever
  extracted to disk, because such a file was made to attack an unzipper and nothing good comes in it;
- more than :attr:`PhotoLimits.max_entries` entries, an entry over ``max_entry_bytes`` uncompressed, a total
  over ``max_total_bytes``, or an entry that inflates more than ``max_ratio`` times (a zip bomb: photos are
  already compressed and never shrink 100 times);
- encrypted entries, two entries with one name, or a file that is not a zip at all.

Names are matched case-sensitively after turning ``\\`` into ``/`` (Windows tools write either). When every
entry sits under one top folder (Windows' "send to compressed folder" on a folder does that), a name from the
CSV is also looked up under that folder. Reading an entry is bounded by its checked size.
"""

from __future__ import annotations

import hashlib
import stat
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

from console.errors import ConsoleError


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    max_entries: int = 500_000  # 100,000 rows of up to 5 photos
    max_entry_bytes: int = 10 * 1024 * 1024
    max_total_bytes: int = 50 * 1024 ** 3
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1024 * 1024  # entries smaller than this are not judged by their ratio


class PhotoMissing(LookupError):
    """The CSV names a photo that the zip or folder does not hold (or may not be read)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PhotoFile:
    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class PhotoSource(Protocol):
    def read(self, name: str) -> PhotoFile:
        """The photo ``name`` as the CSV writes it; :class:`PhotoMissing` when there is none."""
        ...

    def close(self) -> None: ...


def bad_zip(message: str) -> ConsoleError:
    return ConsoleError("bad_zip", message, 422)


def normalise_name(name: str) -> str:
    return name.replace("\\", "/")


def _unsafe(name: str) -> str | None:
    """Why an entry's (normalised) name is unsafe, or None."""
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute name"
    if ".." in PurePosixPath(name).parts:
        return "a name that climbs out of the folder (..)"
    if "\x00" in name:
        return "a NUL character in the name"
    return None


class ZipPhotos:
    """The photos of one zip file, checked at opening (see the module docstring); safe to read from the
    importer's worker threads (one read at a time)."""

    def __init__(self, file: str | Path | IO[bytes], limits: PhotoLimits | None = None, *,
                 owns: IO[bytes] | None = None) -> None:
        self.limits = limits or PhotoLimits()
        self._owned = owns  # a file object closed with the zip (the decrypting reader of a sealed upload)
        try:
            self._zip = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
            raise bad_zip(f"照片文件不是有效的 zip 文件 / the photos file is not a valid zip file: {exc}") from exc
        self._lock = threading.Lock()
        try:
            self._entries = self._check(self._zip.infolist())
        except ConsoleError:
            self._zip.close()
            raise
        self._prefix = _common_folder(list(self._entries))

    def _check(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        limits = self.limits
        if len(infos) > limits.max_entries:
            raise bad_zip(f"zip 中的文件过多（{len(infos)} 个，上限 {limits.max_entries}）/ the zip holds "
                          f"{len(infos)} entries; the limit is {limits.max_entries}")
        entries: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = normalise_name(info.filename)
            why = _unsafe(name)
            if why:
                raise bad_zip(f"zip 中有不安全的文件名 {info.filename!r}（{why}）/ the zip holds an unsafe name "
                              f"{info.filename!r} ({why})")
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise bad_zip(f"zip 中的文件 {name!r} 已加密 / the zip entry {name!r} is encrypted")
            if info.file_size > limits.max_entry_bytes:
                raise bad_zip(f"zip 中的文件 {name!r} 过大（{info.file_size} 字节，上限 {limits.max_entry_bytes}）/ "
                              f"the zip entry {name!r} is {info.file_size} bytes; the limit is "
                              f"{limits.max_entry_bytes}")
            if (info.file_size >= limits.ratio_floor_bytes
                    and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
                raise bad_zip(f"zip 中的文件 {name!r} 压缩比异常（zip 炸弹）/ the zip entry {name!r} inflates "
                              f"{info.file_size / max(info.compress_size, 1):.0f} times: a zip bomb")
            total += info.file_size
            if total > limits.max_total_bytes:
                raise bad_zip(f"zip 解压后总大小超过上限 {limits.max_total_bytes} 字节 / the zip inflates to more "
                              f"than {limits.max_total_bytes} bytes")
            if name in entries:
                raise bad_zip(f"zip 中有重名文件 / the zip holds {name!r} twice")
            entries[name] = info
        return entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def read(self, name: str) -> PhotoFile:
        key = normalise_name(name)
        info = self._entries.get(key)
        if info is None and self._prefix:
            info = self._entries.get(self._prefix + key)
        if info is None:
            raise PhotoMissing(name, f"the zip holds no file named {name!r} (names are case-sensitive)")
        with self._lock:
            try:
                with self._zip.open(info) as fh:
                    data = fh.read(self.limits.max_entry_bytes + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
                raise PhotoMissing(name, f"the zip entry {name!r} cannot be read: {exc}") from exc
        if len(data) > self.limits.max_entry_bytes:  # a header that lied about the size
            raise PhotoMissing(name, f"the zip entry {name!r} is larger than {self.limits.max_entry_bytes} bytes")
        return PhotoFile(name, data)

    def close(self) -> None:
        self._zip.close()
        if self._owned is not None:
            self._owned.close()


def _common_folder(names: list[str]) -> str:
    """``top/`` when every entry (ignoring macOS's ``__MACOSX/``) lies under the one folder ``top``; else ''."""
    tops = {n.split("/", 1)[0] for n in names if "/" in n and not n.startswith("__MACOSX/")}
    flat = [n for n in names if "/" not in n]
    return f"{tops.pop()}/" if len(tops) == 1 and not flat else ""


class FolderPhotos:
    """The photos of a folder (the CLI): a name is looked up below the folder and never outside it (no
    ``..``, no absolute names, no symbolic link that leads out)."""

    def __init__(self, root: Path, limits: PhotoLimits | None = None) -> None:
        if not root.is_dir():
            raise bad_zip(f"照片文件夹不存在 / the photos folder {root} does not exist")
        self.root = root.resolve()
        self.limits = limits or PhotoLimits()

    def read(self, name: str) -> PhotoFile:
        key = normalise_name(name)
        why = _unsafe(key)
        if why:
            raise PhotoMissing(name, f"the photo name {name!r} is unsafe ({why})")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise PhotoMissing(name, f"the photo {name!r} leads outside the photos folder")
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise PhotoMissing(name, f"no file named {name!r} in {self.root} (names are case-sensitive)")
            if info.st_size > self.limits.max_entry_bytes:
                raise PhotoMissing(name, f"the photo {name!r} is {info.st_size} bytes; the limit is "
                                         f"{self.limits.max_entry_bytes}")
            with path.open("rb") as fh:
                data = fh.read(self.limits.max_entry_bytes + 1)
        except FileNotFoundError:
            raise PhotoMissing(name, f"no file named {name!r} in {self.root} (names are case-sensitive)") from None
        except OSError as exc:
            raise PhotoMissing(name, f"the photo {name!r} cannot be read: {exc}") from exc
        return PhotoFile(name, data)

    def close(self) -> None:
        return None


def open_photos(path: Path, limits: PhotoLimits | None = None) -> PhotoSource:
    """A folder or a zip file, as the CLI's ``--photos`` names it."""
    if path.is_dir():
        return FolderPhotos(path, limits)
    return ZipPhotos(path, limits)
