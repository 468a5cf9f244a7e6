"""A box that pulls its next change set from the real console and is killed (SIGKILL, as ``kill -9``) at a named
point of applying it: S2's checkpoint hook of :class:`edge.sync.apply.GalleryApplier`, driven by the real puller.

``python -m tests.e2e.sync_killee CONFIG POINT`` opens the registered box from CONFIG as the service does (its own
engine, its token from the data folder), asks the console for the changes since the version it holds
(:meth:`edge.sync.puller.SyncPuller.pull`, no wait) and kills itself when the apply reaches POINT
("gallery_written": the new gallery files are on disk and nothing is committed; "committed": rows and pointer are
committed, memory not swapped and the old files not yet removed).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from edge.config import load_config
from edge.runtime import EdgeRuntime
from edge.sync.apply import GalleryApplier
from edge.sync.client import ConsoleClient
from edge.sync.puller import SyncPuller


def main() -> None:
    config_path, point = Path(sys.argv[1]), sys.argv[2]
    config = load_config(config_path)
    runtime = EdgeRuntime(config)
    assert runtime.sync is not None and runtime.sync.credentials is not None and config.sync.console_url

    def checkpoint(name: str) -> None:
        if name == point:
            print(f"KILLED AT {name} (holding version {applier.version})", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    applier = GalleryApplier(store=runtime.store, data_dir=runtime.data_dir, gallery=runtime.gallery,
                             engine=runtime.engine, enroller=runtime.enroller, plates=runtime.plates,
                             checkpoint=checkpoint)
    puller = SyncPuller(client=ConsoleClient(config.sync.console_url, runtime.sync.credentials.token),
                        applier=applier, config=config.sync, model_id=runtime.engine.model_id,
                        software="e2e killee", cameras=list)
    print(f"PULLED AND APPLIED: {puller.pull(0.0)}", flush=True)  # not reached when the point is passed
    runtime.stop()


if __name__ == "__main__":
    main()
