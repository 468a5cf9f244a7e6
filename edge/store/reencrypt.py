"""The store's encrypted data as a whole: a sample of it for the key check, and re-encryption for a key
rotation. Which data is encrypted is declared on the columns (``info=ENCRYPTED``, see :mod:`edge.store.db`),
so a table added later is covered without changing this module."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.fernet import Fernet
from sqlalchemy import Column, select, text, update
from sqlalchemy.orm import Session

from edge.store.db import Store
from edge.store.tables import Base, MetaRow
from vault.keys import decrypt


def encrypted_columns() -> list[Column[bytes]]:
    """Every column declared ``info=ENCRYPTED`` in the tables known to :class:`Base`, in a stable order."""
    return [c for table in Base.metadata.sorted_tables for c in table.columns if c.info.get("encrypted")]


def sample_encrypted(store: Store) -> list[tuple[str, bytes]]:
    """The newest stored value of each encrypted column that holds any, as ``("table.column", blob)``."""
    out: list[tuple[str, bytes]] = []
    with store.session() as s:
        for column in encrypted_columns():
            blob = s.scalar(select(column).where(column.is_not(None)).order_by(text("rowid DESC")).limit(1))
            if blob is not None:
                out.append((f"{column.table.name}.{column.name}", bytes(blob)))
    return out


def reencrypt(store: Store, new: Fernet, *, meta: dict[str, str],
              also: Callable[[Session], None] | None = None) -> int:
    """Re-encrypt every encrypted value of ``store`` with ``new`` and set ``meta``, in ONE transaction: all
    of it is committed or nothing is. ``also`` runs inside the same transaction before the commit (e.g. to
    update the clip index). Raises KeyMaterialError, with nothing changed, when a value does not decrypt with
    the store's current key. Returns how many values were re-encrypted; the store then uses ``new``."""
    count = 0
    old = store.cipher
    with store.session() as s, s.begin():
        for column in encrypted_columns():
            keys = list(column.table.primary_key.columns)
            for row in s.execute(select(*keys).where(column.is_not(None))).all():
                where = [k == v for k, v in zip(keys, row, strict=True)]
                blob = s.scalar(select(column).where(*where))
                if blob is None:
                    continue
                fresh = new.encrypt(decrypt(old, bytes(blob)))
                s.execute(update(column.table).where(*where).values({column.name: fresh}))
                count += 1
        for key, value in meta.items():
            s.merge(MetaRow(key=key, value=value))
        if also is not None:
            also(s)
    store.use_cipher(new)
    return count
