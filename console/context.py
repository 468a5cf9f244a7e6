"""Everything one console process holds: config, database, blob store, data key and the face engine.

The face engine (an :class:`~vision.engines.owner.EnginePool`, one owner thread per native instance) is
built at first use, so that sign-in, lists and audit work without loading a model; a test or a benchmark
may hand in a pool it already built (``engine=``), which the context then does not close.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from console.config import ConsoleConfig
from console.db import Database, make_engine
from console.keys import load_or_create_key
from console.storage import BlobStore, LocalBlobStore
from vault.keys import DataKey
from vision.engines.base import FaceEngine
from vision.engines.owner import EnginePool, EnginePoolConfig
from vision.engines.registry import build_engine


@dataclass
class ConsoleContext:
    config: ConsoleConfig
    db: Database
    blobs: BlobStore
    key: DataKey
    _engine: FaceEngine | None = None
    _owns_engine: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    extras: dict[str, object] = field(default_factory=dict)  # per-capability state (duplicate index, imports)

    @classmethod
    def open(cls, config: ConsoleConfig, *, engine: FaceEngine | None = None) -> ConsoleContext:
        key = load_or_create_key(config.data_dir)
        db = Database(make_engine(config.database_url, pool_size=config.database.pool_size))
        blobs = LocalBlobStore(config.data_dir / "blobs", key)
        return cls(config=config, db=db, blobs=blobs, key=key, _engine=engine)

    def engine(self) -> FaceEngine:
        """The face engine pool, built at the first call."""
        with self._lock:
            if self._engine is None:
                settings = self.config.face.engine
                self._engine = EnginePool(lambda: build_engine(settings),
                                          EnginePoolConfig(instances=self.config.face.engine_instances,
                                                           name="console-face-engine"))
                self._owns_engine = True
            return self._engine

    def close(self) -> None:
        for extra in list(self.extras.values()):  # e.g. the bulk import runner: its jobs stop after the rows in
            closer = getattr(extra, "close", None)  # flight and are marked failed (resumable), not left running
            if callable(closer):
                closer()
        with self._lock:
            if self._owns_engine and isinstance(self._engine, EnginePool):
                self._engine.close()
            self._engine = None
        self.db.close()
