"""The SQLite store (db), re-encryption of its values (reencrypt), the data folder check and lock (datadir,
datadir_text) and key rotation (rotation, rekey_journal)."""
