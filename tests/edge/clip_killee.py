"""A process that records a service interaction the way the edge service does, until it is killed.

``python -m tests.edge.clip_killee DATA_DIR PHOTO`` opens the data folder as the service does, stores an
interaction that has started (as the counter rule does) and records its clip with the real recorder from
frames of a real photo (each frame's index drawn as a marker). Once at least one whole fragment of the clip
is on disk it prints ``RECORDING <interaction id>`` and goes on recording, for the test to ``kill -9`` it in
the middle of the clip.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

import cv2

from edge.clips.config import ClipConfig
from edge.clips.encoder import complete_fragments
from edge.clips.recorder import ClipRecorder
from edge.clips.types import ClipParticipants, InteractionRecord
from edge.errors import ClipFileError
from edge.review.store import ReviewStore
from edge.store.datadir import open_data_folder
from tests.edge.clip_helpers import CAPTURED_T0, T0, draw_marker, fit, make_frame
from vault.clip_file import CLIP_KEY_PURPOSE, ClipReader

BRANCH = "test-branch"
CAMERA = "counter-1"
INTERACTION = "i-killed"
STEP_S = 0.125  # 8 fps on the frames' clock
START_AT = 8  # the interaction starts at the 9th frame (t=1.0 s); 0.5 s of pre-roll before it


def whole_fragments(clips_dir: Path, key: bytes) -> bool:
    for part in clips_dir.rglob("*.mp4.part"):
        try:
            with ClipReader(part, key, partial=True) as reader:
                return complete_fragments(reader, reader.size) > 0
        except (ClipFileError, OSError):
            return False
    return False


def main(data_dir: Path, photo: Path) -> None:
    clips_dir = data_dir / "clips"
    folder = open_data_folder(data_dir, branch_id=BRANCH, clips_dir=clips_dir)
    review = ReviewStore(folder.store)
    key = folder.key.derive(CLIP_KEY_PURPOSE)
    image = fit(cv2.imread(str(photo)), 640, 360)
    recorder = ClipRecorder(CAMERA, ClipConfig(pre_roll_s=0.5, post_roll_s=1.0), clips_dir, review.add_clip,
                            key=key)
    participants = ClipParticipants(INTERACTION, CAMERA, 1, 2, "staff-a", None)
    announced = False
    for i in range(100_000):
        t = i * STEP_S
        if i == START_AT:
            review.add_interaction(InteractionRecord(participants, CAPTURED_T0 + timedelta(seconds=t), None, None,
                                                     None))
            recorder.start(participants, T0 + t)
        recorder.push(make_frame(i, t, draw_marker(image, i % 256), CAMERA), [])
        if not announced and i > START_AT and i % 8 == 0 and whole_fragments(clips_dir, key):
            print(f"RECORDING {INTERACTION}", flush=True)
            announced = True
        time.sleep(0.01)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
