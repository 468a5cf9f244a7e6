"""The console's data key: ``$SMARTBRANCH_DATA_KEY``, else ``data_dir/data.key``; a new key is made only for
a data folder that holds no encrypted blob yet (a lost key must never be silently replaced)."""

from __future__ import annotations

from pathlib import Path

from vault.errors import KeyMaterialError
from vault.keys import KEY_FILE, DataKey, configured_key, write_key_file


def load_or_create_key(data_dir: Path) -> DataKey:
    key = configured_key(data_dir)
    if key is not None:
        return key
    blobs = data_dir / "blobs"
    if blobs.is_dir() and any(blobs.rglob("*")):
        raise KeyMaterialError(f"{data_dir} holds encrypted photos but no key ({data_dir / KEY_FILE} is missing "
                               "and $SMARTBRANCH_DATA_KEY is unset); restore the key, never make a new one")
    data_dir.mkdir(parents=True, exist_ok=True)
    key = DataKey.generate()
    write_key_file(data_dir / KEY_FILE, key)
    return DataKey(key.raw, str(data_dir / KEY_FILE))
