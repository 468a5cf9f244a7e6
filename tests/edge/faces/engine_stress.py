"""A whole edge runtime with cameras running while other threads enrol, add photos and evaluate faces.

Run as a child process by ``test_engine_ownership.py`` (a native crash must fail the test, not kill the test
runner): ``python -m tests.edge.faces.engine_stress CONFIG PHOTOS SECONDS``. Prints one JSON line of counts and
exits 0 when nothing crashed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from edge.config import load_config
from edge.errors import EnrolmentError
from edge.runtime import EdgeRuntime
from vision.enrolment import embed_largest_face
from vision.imageio import decode_image

ENROL_PHOTOS = ("obama.jpg", "biden.jpg", "tom_hanks.png")
EXTRA_PHOTOS = ("obama2.jpg", "obama3.jpg")
EVAL_PHOTOS = ("t1.jpg", "obama2.jpg", "biden.jpg")


def main(config_path: Path, photos: Path, seconds: float) -> int:
    runtime = EdgeRuntime(load_config(config_path))
    runtime.start()
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def note(kind: str, error: BaseException | None = None) -> None:
        with lock:
            outcomes[kind] += 1
            if error is not None and not isinstance(error, EnrolmentError):
                failures.append(f"{kind}: {type(error).__name__}: {error}")

    def enrol(worker: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            name = ENROL_PHOTOS[(n + worker) % len(ENROL_PHOTOS)]
            try:
                person = runtime.enroller.enrol(name=f"p{worker}-{n}", tier="金卡", consent="测试",
                                                photo=(photos / name).read_bytes())
            except Exception as exc:  # duplicates are expected: the same faces are enrolled again and again
                note("enrol_refused", exc)
            else:
                note("enrolled")
                if name == "obama.jpg":
                    for extra in EXTRA_PHOTOS:
                        try:
                            runtime.enroller.add_photo(person_id=person.id, photo=(photos / extra).read_bytes())
                        except Exception as exc:
                            note("add_photo_refused", exc)
                        else:
                            note("photo_added")
            n += 1

    def evaluate() -> None:
        images = [decode_image((photos / name).read_bytes()) for name in EVAL_PHOTOS]
        n = 0
        while time.monotonic() < deadline:
            try:
                vector = embed_largest_face(runtime.engine, images[n % len(images)])
            except Exception as exc:
                note("evaluation_failed", exc)
            else:
                note("evaluated" if vector is not None else "evaluated_no_face")
            n += 1

    threads = [threading.Thread(target=enrol, args=(i,)) for i in range(2)]
    threads += [threading.Thread(target=evaluate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    processed = {w.pipeline.camera.id: w.processed for w in runtime.workers}
    camera_errors = sum(w.errors for w in runtime.workers)
    runtime.stop()
    print(json.dumps({"outcomes": dict(outcomes), "failures": failures, "processed": processed,
                      "camera_errors": camera_errors, "owners": list(runtime.engine.owners)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])))
