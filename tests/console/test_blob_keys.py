"""The console's blob store takes only its own keys (32 lower-case hex digits): anything else is "no such blob",
never a path outside its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.storage import BlobNotFound, LocalBlobStore
from vault.keys import DataKey


@pytest.mark.parametrize("key", ["../" + "a" * 29, "A" * 32, "g" * 32, "a" * 31, "a" * 33, "", "a" * 31 + "/"])
def test_a_key_that_is_not_32_lower_case_hex_digits_is_no_blob(tmp_path: Path, key: str) -> None:
    store = LocalBlobStore(tmp_path / "blobs", DataKey.generate())
    store.put(b"x")
    with pytest.raises(BlobNotFound):
        store.get(key)
    assert not store.exists(key)
    store.delete(key)  # nothing to do, no error


def test_a_stored_blob_is_read_back_by_its_key(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", DataKey.generate())
    key = store.put(b"\xff\xd8 jpeg")
    assert store.get(key) == b"\xff\xd8 jpeg" and store.exists(key)
