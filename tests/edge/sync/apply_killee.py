"""A box that applies one gallery answer and is killed (SIGKILL, as ``kill -9``) at a named point of the apply.

``python -m tests.edge.sync.apply_killee CONFIG ANSWER_JSON POINT`` opens the box from CONFIG as the service does
(its own dlib engine), applies the answer in ANSWER_JSON with :class:`edge.sync.apply.GalleryApplier`, and kills
itself when the apply reaches POINT ("gallery_written": new gallery files on disk, nothing committed;
"committed": rows and pointer committed, memory not swapped, old files not yet removed). With a fourth argument
``staged`` the answer is staged as one page of a snapshot (:mod:`edge.sync.stage`) and the stage applied, as a
snapshot of several pages is.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from edge.config import load_config
from edge.runtime import EdgeRuntime
from edge.sync.apply import GalleryApplier
from edge.sync.changes import parse_answer


def main() -> None:
    config_path, answer_path, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    staged = sys.argv[4:] == ["staged"]
    runtime = EdgeRuntime(load_config(config_path))

    def checkpoint(name: str) -> None:
        if name == point:
            print(f"KILLED AT {name}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    applier = GalleryApplier(store=runtime.store, data_dir=runtime.data_dir, gallery=runtime.gallery,
                             engine=runtime.engine, enroller=runtime.enroller, plates=runtime.plates,
                             checkpoint=checkpoint)
    body = json.loads(answer_path.read_text(encoding="utf-8"))
    changes, _ = parse_answer(body)
    if staged:
        stage = applier.stage(changes.version)
        stage.add(changes, list(body["persons"]))
        applier.apply_staged(stage)
    else:
        applier.apply(changes)
    print("APPLIED", flush=True)  # not reached when the point is passed
    runtime.stop()


if __name__ == "__main__":
    main()
