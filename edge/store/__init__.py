"""The SQLite store (db, its tables), re-encryption of its values (reencrypt), the data folder check and lock
(datadir, datadir_text), key rotation (rotation, rekey_journal), the persons each alert and outbox event names,
with the erasure's scrub of them (mentions), and the face population's encrypted aggregates (population)."""

__all__ = ["datadir", "datadir_text", "db", "mentions", "population", "rotation",
           "tables"]  # what other capability folders import
