"""The encrypted clip file format: clips of customers' faces are biometric data (PIPL), so no clip is ever
written to disk in plain.

A clip file is a 34-byte header followed by chunks. Each chunk is a fixed-size piece of the plaintext MP4
(``chunk_size`` bytes; only the last one may be shorter, and it may be empty) sealed with AES-256-GCM, so it
is 16 bytes longer than its plaintext::

    header  = b"SBCLIP" | version (1 byte, 1) | chunk_size (u32, big-endian) | salt (16) | nonce prefix (7)
    key     = HKDF-SHA256(clip key, salt=salt, info=b"smartbranch/clips/file/v1")   one key per file
    chunk i = AES-256-GCM(key, nonce = prefix | i (u32) | last, plaintext[i], aad = header | i (u32) | last)

``last`` is 1 on the final chunk and 0 on every other, so a file cut short (even at a chunk boundary) or a
chunk moved elsewhere fails to open instead of playing a shorter clip. The header is in every chunk's AAD,
so a changed chunk size or salt is detected too. Any changed byte gives :class:`ClipFileError`, never
different bytes.

The clip key is the data key's ``clips`` key (``DataKey.derive(CLIP_KEY_PURPOSE)`` in :mod:`vault.keys`):
rotating the data key rotates it. The plaintext's size follows from the file's size, so a reader seeks to
any byte and decrypts only the chunks it needs: :meth:`ClipReader.iter_range` serves an HTTP Range, and
:class:`ClipReader` is a seekable file object that PyAV reads directly.

A clip being recorded is written through :class:`ClipWriter`, whose complete chunks reach the file as soon
as they are full; when the process is killed, :class:`ClipReader` with ``partial=True`` still reads every
complete chunk (what the start-up recovery salvages).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import ClipFileError

CLIP_KEY_PURPOSE = "clips"  # DataKey.derive(CLIP_KEY_PURPOSE) is the clip key
MAGIC = b"SBCLIP"
VERSION = 1
CHUNK_BYTES = 64 * 1024
TAG_BYTES = 16
_HEADER = struct.Struct(">6sBI16s7s")
HEADER_BYTES = _HEADER.size  # 34
_FILE_KEY_INFO = b"smartbranch/clips/file/v1"
_MAX_CHUNK = 1 << 24


def _check_key(key: bytes) -> None:
    if len(key) != 32:
        raise ValueError(f"a clip key is 32 bytes, got {len(key)}")


def _file_key(key: bytes, salt: bytes) -> AESGCM:
    _check_key(key)
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_FILE_KEY_INFO).derive(key))


def _nonce_and_aad(header: bytes, prefix: bytes, index: int, last: bool) -> tuple[bytes, bytes]:
    tail = struct.pack(">IB", index, 1 if last else 0)
    return prefix + tail, header + tail


def is_clip_file(path: Path) -> bool:
    """Whether ``path`` starts like an encrypted clip (says nothing about its key or its integrity)."""
    with path.open("rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def create_private(path: Path) -> BinaryIO:
    """A new file opened for writing, unbuffered (what is written is in the kernel at once, so it survives the
    process being killed), mode 0600 from the start; an existing file is an error."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb", buffering=0)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ClipWriter(io.RawIOBase):
    """Encrypts what is written to it into ``sink`` (a binary file it owns and closes). Write-only and not
    seekable: the MP4 muxer writes fragmented MP4 into it front to back. Every full chunk goes to ``sink`` at
    once; :meth:`close` writes the final chunk. Used by one thread."""

    def __init__(self, sink: BinaryIO, key: bytes, *, chunk_size: int = CHUNK_BYTES) -> None:
        super().__init__()
        if not 0 < chunk_size <= _MAX_CHUNK:
            raise ValueError(f"chunk_size must be 1..{_MAX_CHUNK}, got {chunk_size}")
        self._sink = sink
        self._chunk = chunk_size
        salt, self._prefix = os.urandom(16), os.urandom(7)
        self._header = _HEADER.pack(MAGIC, VERSION, chunk_size, salt, self._prefix)
        self._aead = _file_key(key, salt)
        self._pending = bytearray()
        self._index = 0
        self.plain_bytes = 0
        self._put(self._header)

    @classmethod
    def create(cls, path: Path, key: bytes, *, chunk_size: int = CHUNK_BYTES) -> ClipWriter:
        """A writer into a new file ``path`` (mode 0600; an existing file is an error)."""
        return cls(create_private(path), key, chunk_size=chunk_size)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed clip writer")
        view = memoryview(data).cast("B")
        self._pending += view
        self.plain_bytes += len(view)
        # a full chunk is sealed once a byte after it exists: only then is it certainly not the last one
        while len(self._pending) > self._chunk:
            self._seal(bytes(self._pending[:self._chunk]), last=False)
            del self._pending[:self._chunk]
        return len(view)

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # an unbuffered write may take less than it was given
            written = self._sink.write(view)
            if not written:
                raise OSError(f"writing a clip file wrote nothing ({written!r})")
            view = view[written:]

    def _seal(self, plain: bytes, *, last: bool) -> None:
        nonce, aad = _nonce_and_aad(self._header, self._prefix, self._index, last)
        self._put(self._aead.encrypt(nonce, plain, aad))
        self._index += 1

    def close(self) -> None:
        """Write the final chunk, flush, fsync and close the file."""
        if self.closed:
            return
        try:
            self._seal(bytes(self._pending), last=True)
            self._pending.clear()
            self._sink.flush()
            os.fsync(self._sink.fileno())
        finally:
            self._sink.close()
            super().close()

    def close_unfinished(self) -> None:
        """Seal the chunks written so far as not final, flush, fsync and close: the file stays one whose
        writer never finished (only :class:`ClipReader` with ``partial=True`` reads it)."""
        if self.closed:
            return
        try:
            if len(self._pending) == self._chunk:
                self._seal(bytes(self._pending), last=False)
            self._pending.clear()
            self._sink.flush()
            os.fsync(self._sink.fileno())
        finally:
            self._sink.close()
            super().close()

    def discard(self) -> None:
        """Close the file without a final chunk (the caller deletes it)."""
        if not self.closed:
            self._sink.close()
            super().close()


class ClipReader(io.RawIOBase):
    """A read-only, seekable view of the plaintext of an encrypted clip file, decrypting chunk by chunk.

    Opening checks the header and authenticates the final chunk, so a file that was cut short or does not
    open with ``key`` is refused at once (:class:`ClipFileError`). With ``partial=True`` (a file whose
    writer was killed) every complete chunk is readable and a final chunk is not required. Reading a chunk
    that was changed raises :class:`ClipFileError`. Used by one thread; owns its file handle."""

    def __init__(self, path: Path, key: bytes, *, partial: bool = False) -> None:
        super().__init__()
        _check_key(key)
        self.path = path
        self._fh = path.open("rb")
        try:
            self._open(key, partial)
        except BaseException:
            self._fh.close()
            raise
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def _open(self, key: bytes, partial: bool) -> None:
        header = self._fh.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES or header[:len(MAGIC)] != MAGIC:
            raise ClipFileError(f"{self.path} is not an encrypted clip file")
        fields = _HEADER.unpack(header)
        version, chunk, salt, prefix = int(fields[1]), int(fields[2]), bytes(fields[3]), bytes(fields[4])
        if version != VERSION or not 0 < chunk <= _MAX_CHUNK:
            raise ClipFileError(f"{self.path}: unknown clip format version {version} or chunk size {chunk}")
        self._header, self._prefix, self._chunk = header, prefix, chunk
        self._aead = _file_key(key, salt)
        body = os.fstat(self._fh.fileno()).st_size - HEADER_BYTES
        sealed = chunk + TAG_BYTES
        count = -(-body // sealed)  # chunks, the last one perhaps short
        last_len = body - (count - 1) * sealed
        self.complete = True
        if count >= 1 and last_len >= TAG_BYTES:
            try:
                last_plain = self._decrypt(count - 1, last=True)
            except ClipFileError:
                if not partial:
                    raise ClipFileError(f"{self.path} is cut short, damaged or not encrypted with this key") from None
            else:
                self.size = (count - 1) * chunk + len(last_plain)
                self._last_index = count - 1
                return
        elif not partial:
            raise ClipFileError(f"{self.path} is cut short (no final chunk)")
        self.complete = False  # a writer that never closed: its complete chunks only
        full = body // sealed
        self.size = full * chunk
        self._last_index = full - 1
        if full and self._first_chunk_fails():
            raise ClipFileError(f"{self.path} does not open with this key or is damaged")

    @property
    def chunk_size(self) -> int:
        return self._chunk

    def _first_chunk_fails(self) -> bool:
        try:
            self._decrypt(0, last=False)
        except ClipFileError:
            return True
        return False

    def _decrypt(self, index: int, *, last: bool) -> bytes:
        self._fh.seek(HEADER_BYTES + index * (self._chunk + TAG_BYTES))
        sealed = self._fh.read(self._chunk + TAG_BYTES)
        nonce, aad = _nonce_and_aad(self._header, self._prefix, index, last)
        try:
            return self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise ClipFileError(f"{self.path}: chunk {index} is damaged or was changed") from None

    def chunk(self, index: int) -> bytes:
        """The plaintext of chunk ``index`` (authenticated)."""
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        if not 0 <= index <= self._last_index:
            raise ValueError(f"chunk {index} is outside the file")
        plain = self._decrypt(index, last=self.complete and index == self._last_index)
        self._cached = (index, plain)
        return plain

    def limit(self, size: int) -> None:
        """Show only the first ``size`` bytes from now on."""
        self.size = max(0, min(size, self.size))

    def iter_range(self, first: int, length: int) -> Iterator[bytes]:
        """The plaintext bytes ``first .. first+length-1`` (cut at the end), one piece per chunk, decrypting
        only the chunks they lie in."""
        end = min(first + length, self.size)
        pos = first
        while pos < end:
            index, offset = divmod(pos, self._chunk)
            piece = self.chunk(index)[offset:offset + end - pos]
            if not piece:
                raise ClipFileError(f"{self.path}: chunk {index} is shorter than its place in the file")
            pos += len(piece)
            yield piece

    # -- io.RawIOBase ---------------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        for piece in self.iter_range(self._pos, len(view)):
            view[done:done + len(piece)] = piece
            done += len(piece)
        self._pos += done
        return done

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def encrypt_bytes(data: bytes | memoryview, path: Path, key: bytes, *, chunk_size: int = CHUNK_BYTES) -> None:
    """Write ``data`` encrypted to the new file ``path`` (0600), fsynced. The caller renames it into place."""
    writer = ClipWriter.create(path, key, chunk_size=chunk_size)
    try:
        writer.write(data)
    except BaseException:
        writer.discard()
        path.unlink(missing_ok=True)
        raise
    writer.close()


def _copy_encrypted(source: io.RawIOBase | BinaryIO, path: Path, key: bytes, *, final: Path, finished: bool = True,
                    chunk_size: int = CHUNK_BYTES) -> None:
    """Encrypt the whole of ``source`` into ``path`` and rename it over ``final`` (atomic, fsynced).
    ``finished`` False: the copy, like its source, has no final chunk."""
    writer = ClipWriter.create(path, key, chunk_size=chunk_size)
    try:
        while block := source.read(CHUNK_BYTES):
            writer.write(block)
    except BaseException:
        writer.discard()
        path.unlink(missing_ok=True)
        raise
    if finished:
        writer.close()
    else:
        writer.close_unfinished()
    os.replace(path, final)
    fsync_dir(final.parent)


def encrypt_plain_file(path: Path, key: bytes) -> None:
    """Replace the plain file ``path`` by its encryption (same name, 0600), atomically: a crash leaves either
    the plain file or the encrypted one, and at most a ``.enc-tmp`` file beside it."""
    with path.open("rb") as plain:
        _copy_encrypted(plain, path.with_name(path.name + ".enc-tmp"), key, final=path)


UNFINISHED_SUFFIXES = (".part", ".tmp")  # files of a writer that may have been killed


def reencrypt_clip_file(path: Path, old_key: bytes, new_key: bytes) -> None:
    """Re-encrypt the clip file ``path`` from ``old_key`` to ``new_key`` (both clip keys, 32 bytes each:
    ``DataKey.derive(CLIP_KEY_PURPOSE)`` of the old and the new data key), in place and atomically: a crash
    leaves the old file whole, and at most a ``.enc-tmp`` file beside it. The plaintext, its sha256 and its
    size do not change. A file named ``*.part`` or ``*.tmp`` (a recording whose process was killed, which
    the next start salvages) may lack its final chunk and keeps lacking it; any other file must be whole.
    Raises :class:`ClipFileError` when the file does not open with ``old_key`` or is damaged; then nothing
    is changed."""
    _check_key(new_key)
    unfinished = path.name.endswith(UNFINISHED_SUFFIXES)
    with ClipReader(path, old_key, partial=unfinished) as reader:
        _copy_encrypted(reader, path.with_name(path.name + ".enc-tmp"), new_key, final=path,
                        finished=reader.complete, chunk_size=reader.chunk_size)
