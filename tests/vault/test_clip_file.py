"""The encrypted clip format: exact plaintext at every offset, and an error (never other bytes) for a changed,
moved, cut or wrongly keyed file."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from edge.errors import ClipFileError
from vault.clip_file import (
    HEADER_BYTES,
    TAG_BYTES,
    ClipReader,
    ClipWriter,
    encrypt_bytes,
    encrypt_plain_file,
    is_clip_file,
    reencrypt_clip_file,
)

KEY = hashlib.sha256(b"clip key").digest()
OTHER_KEY = hashlib.sha256(b"another clip key").digest()
CHUNK = 1024  # small chunks, so that every case crosses several boundaries


def plain(size: int) -> bytes:
    return (hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1))[:size]


def stored(tmp_path: Path, size: int, name: str = "c.mp4") -> tuple[Path, bytes]:
    data = plain(size)
    path = tmp_path / name
    encrypt_bytes(data, path, KEY, chunk_size=CHUNK)
    return path, data


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 517])
def test_every_range_reads_back_exactly_the_plaintext(tmp_path: Path, size: int) -> None:
    # given a plaintext of this size, encrypted
    path, data = stored(tmp_path, size)
    # then the file is 0600, starts with the format's magic, holds none of the plaintext, and is longer by the
    # header and one tag per chunk
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and is_clip_file(path)
    chunks = max(1, -(-size // CHUNK))
    assert path.stat().st_size == HEADER_BYTES + size + chunks * TAG_BYTES
    if size >= 32:
        assert data[:32] not in path.read_bytes()
    with ClipReader(path, KEY) as reader:
        assert reader.size == size and reader.read() == data
        # and any range, at chunk boundaries and at odd offsets, is exactly that slice
        points = sorted({0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, size - 1, size} & set(range(size + 1)))
        for first in points:
            for length in (1, 2, 7, CHUNK, CHUNK + 3, size + 5):
                assert b"".join(reader.iter_range(first, length)) == data[first:first + length], (first, length)
                reader.seek(first)
                assert reader.read(length) == data[first:first + length]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("offset", [
    0,  # the magic
    6,  # the version
    8,  # the chunk size
    HEADER_BYTES - 3,  # the nonce prefix
    HEADER_BYTES + 10,  # the first chunk's ciphertext
    HEADER_BYTES + CHUNK + 2,  # the first chunk's tag
    HEADER_BYTES + (CHUNK + TAG_BYTES) + 500,  # a middle chunk
    -1,  # the final chunk's tag
])
def test_one_changed_byte_anywhere_is_an_error_not_other_bytes(tmp_path: Path, offset: int) -> None:
    # given a clip of 3.5 chunks with one byte changed
    path, _ = stored(tmp_path, 3 * CHUNK + 512)
    flip(path, offset)
    # when it is read whole, then it fails with ClipFileError instead of returning other bytes
    with pytest.raises(ClipFileError), ClipReader(path, KEY) as reader:
        reader.read()


def test_chunks_cannot_be_moved_and_a_file_cannot_be_cut_short(tmp_path: Path) -> None:
    # given a clip of 4 chunks
    path, data = stored(tmp_path, 4 * CHUNK)
    raw = path.read_bytes()
    sealed = CHUNK + TAG_BYTES
    body = [raw[HEADER_BYTES + i * sealed:HEADER_BYTES + (i + 1) * sealed] for i in range(4)]
    # when two chunks swap places, then the first moved one fails
    path.write_bytes(raw[:HEADER_BYTES] + body[1] + body[0] + body[2] + body[3])
    with ClipReader(path, KEY) as reader, pytest.raises(ClipFileError, match="chunk 0"):
        reader.read()
    # when it is cut at a chunk boundary or inside a chunk, then it does not open at all
    for cut in (HEADER_BYTES + 2 * sealed, HEADER_BYTES + 2 * sealed + 100, HEADER_BYTES, 10):
        path.write_bytes(raw[:cut])
        with pytest.raises(ClipFileError):
            ClipReader(path, KEY)
    # but read as a recording whose writer was killed, its whole chunks are there and exact
    path.write_bytes(raw[:HEADER_BYTES + 2 * sealed + 100])
    with ClipReader(path, KEY, partial=True) as reader:
        assert not reader.complete and reader.size == 2 * CHUNK and reader.read() == data[:2 * CHUNK]


def test_a_wrong_key_or_a_plain_file_does_not_open(tmp_path: Path) -> None:
    path, _ = stored(tmp_path, 5000)
    with pytest.raises(ClipFileError):
        ClipReader(path, OTHER_KEY)
    with pytest.raises(ClipFileError):
        ClipReader(path, OTHER_KEY, partial=True)
    mp4 = tmp_path / "plain.mp4"
    mp4.write_bytes(b"\x00\x00\x00\x1cftypisom" + bytes(100))
    with pytest.raises(ClipFileError, match="not an encrypted clip"):
        ClipReader(mp4, KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        ClipReader(path, KEY[:16])


def test_two_encryptions_of_one_plaintext_share_no_bytes(tmp_path: Path) -> None:
    a, _ = stored(tmp_path, 3000, "a.mp4")
    b, _ = stored(tmp_path, 3000, "b.mp4")
    raw_a, raw_b = a.read_bytes(), b.read_bytes()
    assert raw_a[:7] == raw_b[:7]  # magic and version
    assert raw_a[HEADER_BYTES:HEADER_BYTES + 64] != raw_b[HEADER_BYTES:HEADER_BYTES + 64]  # per-file key and nonce


def test_reencrypt_rotates_the_key_in_place(tmp_path: Path) -> None:
    # given a clip under KEY
    path, data = stored(tmp_path, 3 * CHUNK + 100)
    # when it is re-encrypted to OTHER_KEY, then it reads the same under the new key only, still 0600,
    # and no temporary file is left
    reencrypt_clip_file(path, KEY, OTHER_KEY)
    with ClipReader(path, OTHER_KEY) as reader:
        assert reader.read() == data
    with pytest.raises(ClipFileError):
        ClipReader(path, KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and [p.name for p in tmp_path.iterdir()] == ["c.mp4"]
    # and with a wrong old key it refuses and changes nothing
    before = path.read_bytes()
    with pytest.raises(ClipFileError):
        reencrypt_clip_file(path, KEY, OTHER_KEY)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["c.mp4"]


def test_reencrypt_keeps_a_killed_recording_unfinished(tmp_path: Path) -> None:
    # given a recording whose writer was killed after two whole chunks
    part = tmp_path / "c.mp4.part"
    data = plain(2 * CHUNK + 300)
    writer = ClipWriter.create(part, KEY, chunk_size=CHUNK)
    writer.write(data)
    writer.discard()  # no final chunk, as after kill -9
    # when it is re-encrypted, then it is still an unfinished recording with the same whole chunks
    reencrypt_clip_file(part, KEY, OTHER_KEY)
    with pytest.raises(ClipFileError):
        ClipReader(part, OTHER_KEY)
    with ClipReader(part, OTHER_KEY, partial=True) as reader:
        assert reader.read() == data[:2 * CHUNK]
    # while a finished clip cut short is refused
    path, _ = stored(tmp_path, 3 * CHUNK)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ClipFileError):
        reencrypt_clip_file(path, KEY, OTHER_KEY)


def test_a_plain_file_is_encrypted_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.mp4"
    data = plain(5000)
    path.write_bytes(data)
    os.chmod(path, 0o644)
    encrypt_plain_file(path, KEY)
    assert is_clip_file(path) and stat.S_IMODE(path.stat().st_mode) == 0o600
    with ClipReader(path, KEY) as reader:
        assert reader.read() == data
    assert [p.name for p in tmp_path.iterdir()] == ["old.mp4"]
