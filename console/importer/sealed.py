"""An uploaded import's files, encrypted at rest while its job may still need them.

The photos zip of a web upload is biometric data, and the CSV names the persons in it, so neither is ever
written to disk in plain. Both are written as they arrive through :class:`vault.clip_file.ClipWriter`
(AES-256-GCM in 64 KiB chunks, one key per file derived by HKDF from the console data key's
``console-import-uploads`` key) under ``data_dir/imports`` (0700, files 0600), named by the job's id. The zip is
read back through :class:`vault.clip_file.ClipReader`, a seekable file that decrypts only the chunks
:mod:`zipfile` asks for, so a 50 GiB upload is never decrypted whole, in memory or on disk.

They are deleted when the job is done, and when an interrupted job is abandoned (by a user, or at a console's
start once it has waited :data:`console.importer.lease.ABANDON_AFTER` for a resume). A file whose job is gone
or finished, and a plain ``*.zip`` left by a console before this format, is deleted at the next start
(:func:`sweep`).
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import time
from pathlib import Path
from typing import IO

from console.context import ConsoleContext
from console.importer.photos import PhotoLimits, ZipPhotos, bad_zip
from vault.clip_file import ClipReader, ClipWriter
from vault.errors import ClipFileError

logger = logging.getLogger(__name__)

UPLOAD_KEY_PURPOSE = "console-import-uploads"
ZIP_SUFFIX = ".zip.sealed"
CSV_SUFFIX = ".csv.sealed"
_COPY_BYTES = 1024 * 1024
INCOMING_IDLE_S = 3600.0


class UploadGone(LookupError):
    """The job's sealed upload is not there (abandoned, finished, or not an upload)."""


def upload_folder(ctx: ConsoleContext) -> Path:
    folder = ctx.config.data_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def _key(ctx: ConsoleContext) -> bytes:
    return ctx.key.derive(UPLOAD_KEY_PURPOSE)


def zip_path(ctx: ConsoleContext, job_id: str) -> Path:
    return upload_folder(ctx) / f"{job_id}{ZIP_SUFFIX}"


def csv_path(ctx: ConsoleContext, job_id: str) -> Path:
    return upload_folder(ctx) / f"{job_id}{CSV_SUFFIX}"


def seal_stream(ctx: ConsoleContext, source: IO[bytes], limit: int) -> Path:
    """Encrypt ``source`` into a new file of the upload folder as it is read (refused, and nothing left, once
    it passes ``limit`` bytes: a zip is never larger than the photos it holds); the file's path."""
    path = upload_folder(ctx) / f"incoming-{secrets.token_hex(16)}{ZIP_SUFFIX}"
    writer = ClipWriter.create(path, _key(ctx))
    try:
        copied = 0
        while chunk := source.read(_COPY_BYTES):
            copied += len(chunk)
            if copied > limit:
                raise bad_zip(f"照片 zip 超过 {limit} 字节 / the photos zip is larger than {limit} bytes")
            writer.write(chunk)
    except BaseException:
        writer.discard()
        path.unlink(missing_ok=True)
        raise
    writer.close()
    return path


def seal_bytes(ctx: ConsoleContext, data: bytes, path: Path) -> None:
    writer = ClipWriter.create(path, _key(ctx))
    try:
        writer.write(data)
    except BaseException:
        writer.discard()
        path.unlink(missing_ok=True)
        raise
    writer.close()


def open_zip(ctx: ConsoleContext, path: Path, limits: PhotoLimits) -> ZipPhotos:
    """The sealed zip at ``path`` as checked photos (:class:`ZipPhotos` owns and closes the decrypting reader)."""
    try:
        reader = ClipReader(path, _key(ctx))
    except FileNotFoundError as exc:
        raise UploadGone(str(path)) from exc
    except ClipFileError as exc:
        raise bad_zip(f"导入的照片文件已损坏 / the stored photos of this import are damaged: {exc}") from exc
    buffered = io.BufferedReader(reader, buffer_size=64 * 1024)
    try:
        return ZipPhotos(buffered, limits, owns=buffered)
    except BaseException:
        buffered.close()
        raise


def read_csv(ctx: ConsoleContext, job_id: str) -> bytes:
    try:
        with ClipReader(csv_path(ctx, job_id), _key(ctx)) as reader:
            return reader.read()
    except FileNotFoundError as exc:
        raise UploadGone(job_id) from exc


def has_upload(ctx: ConsoleContext, job_id: str) -> bool:
    return zip_path(ctx, job_id).is_file() and csv_path(ctx, job_id).is_file()


def delete_upload(ctx: ConsoleContext, job_id: str) -> None:
    for path in (zip_path(ctx, job_id), csv_path(ctx, job_id)):
        path.unlink(missing_ok=True)


def sweep(ctx: ConsoleContext, keep: set[str]) -> int:
    """Delete every file of the upload folder that no job in ``keep`` needs (a finished job's, a plain zip of
    an older console, an upload that never became a job) once it has not been written to for
    :data:`INCOMING_IDLE_S` (another replica may be receiving it, or making its job, right now); how many were
    deleted."""
    removed = 0
    now = time.time()
    for path in upload_folder(ctx).iterdir():
        job_id = path.name.split(".", 1)[0]
        if not path.is_file() or (job_id in keep and path.name.endswith((ZIP_SUFFIX, CSV_SUFFIX))):
            continue
        if now - path.stat().st_mtime < INCOMING_IDLE_S:
            continue
        try:
            path.unlink()
        except OSError as exc:
            logger.warning("cannot delete the import upload %s: %s", path, exc)
            continue
        removed += 1
    return removed


def move_into_place(incoming: Path, job_id: str, ctx: ConsoleContext) -> Path:
    final = zip_path(ctx, job_id)
    os.replace(incoming, final)
    return final
