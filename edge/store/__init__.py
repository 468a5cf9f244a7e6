"""The SQLite store (db, its tables), re-encryption of its values (reencrypt), the data folder check and lock
(datadir, datadir_text) and key rotation (rotation, rekey_journal)."""

__all__ = ["datadir", "datadir_text", "db", "rotation", "tables"]  # the modules other capability folders may import
