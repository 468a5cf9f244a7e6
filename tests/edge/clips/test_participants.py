"""Participants are never blurred, from a clip's first frame: the pre-roll shows them under earlier tracks.

The track ids come from the real IoU tracker fed with a clerk who walks over faster than its boxes overlap
between two processed frames (a busy box processes few frames), which is how the clerk got a new track just
before the service started, and was blurred in the first half-second of the clip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.clips.config import ClipConfig
from edge.clips.frames import ClipPerson
from edge.clips.participants import ParticipantLinker
from edge.clips.recorder import ClipRecorder
from edge.clips.types import ClipParticipants
from tests.edge.clip_helpers import CLIP_KEY, T0, Written, decode, fit, laplacian_var, make_frame
from vision.engines.base import FaceEngine
from vision.tracker import IoUTracker
from vision.types import Detections, Image

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Seen:
    """A tracked person as the counter pipeline hands it on (vision.people.PersonView's fields that matter)."""

    track_id: int
    box: Box
    face_box: Box | None = None
    person_id: str | None = None


def tracked(frames: list[list[Box]]) -> list[list[Seen]]:
    """Each frame's boxes through the real IoU tracker, one frame every 0.4 s."""
    tracker = IoUTracker()
    out = []
    for i, boxes in enumerate(frames):
        dets = Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4), score=np.ones(len(boxes), np.float32))
        ids, _ = tracker.update(dets, i * 0.4)
        assert ids.track_id is not None
        out.append([Seen(int(t), (float(row[0]), float(row[1]), float(row[2]), float(row[3])))
                    for t, row in zip(ids.track_id, ids.xyxy, strict=True)])
    return out


CUSTOMER: Box = (600.0, 100.0, 720.0, 460.0)
BYSTANDER: Box = (1000.0, 120.0, 1110.0, 460.0)


def walking_clerk(step: float = 95.0, frames: int = 6) -> list[list[Box]]:
    """The clerk walks right towards the customer, ``step`` pixels a frame; the customer and a bystander wait."""
    return [[(100.0 + i * step, 100.0, 220.0 + i * step, 460.0), CUSTOMER, BYSTANDER] for i in range(frames)]


def test_the_tracker_gives_the_walking_clerk_new_tracks() -> None:
    # the premise: with these steps the IoU tracker loses the clerk between frames
    frames = tracked(walking_clerk())
    assert len({f[0].track_id for f in frames}) > 1


def test_the_walking_clerk_is_a_participant_in_every_pre_roll_frame() -> None:
    frames = tracked(walking_clerk())
    clerk_now, customer, bystander = (p.track_id for p in frames[-1])
    # when the interaction (the clerk's newest track, the customer) looks back over the pre-roll
    keeps = ParticipantLinker((clerk_now, customer)).backfill(frames)
    # then in every frame the clerk (whatever his track there) and the customer are kept, the bystander is not
    for people, keep in zip(frames, keeps, strict=True):
        assert people[0].track_id in keep and customer in keep
        assert bystander not in keep


def test_a_participant_known_by_face_is_kept_anywhere_and_another_face_is_never_linked() -> None:
    linker = ParticipantLinker((1, 2), ("staff-li", None))
    keep = linker.backfill([[Seen(1, (100.0, 100.0, 220.0, 460.0)), Seen(2, CUSTOMER)]])
    assert keep == [frozenset({1, 2})]
    # the clerk is lost by the detector, and someone else with a known other face stands where he was
    assert linker.next([Seen(2, CUSTOMER), Seen(9, (110.0, 100.0, 230.0, 460.0), person_id="vip-wang")]) == {2}
    # the clerk's face identifies him on a new track far away
    assert linker.next([Seen(2, CUSTOMER), Seen(14, (900.0, 90.0, 1000.0, 450.0), person_id="staff-li")]) == {2, 14}


def test_forward_a_participant_who_changes_track_stays_kept_and_a_newcomer_does_not() -> None:
    linker = ParticipantLinker((1, 2))
    linker.backfill([[Seen(1, (100.0, 100.0, 220.0, 460.0)), Seen(2, CUSTOMER), Seen(7, BYSTANDER)]])
    # the clerk jumps to a new track a little further on; a newcomer walks in at the far side
    keep = linker.next([Seen(5, (190.0, 100.0, 310.0, 460.0)), Seen(2, CUSTOMER), Seen(7, BYSTANDER),
                        Seen(8, (1500.0, 100.0, 1600.0, 460.0))])
    assert keep == {5, 2}
    # and the bystander, seen beside both participants, is never taken for one, even when he steps close
    keep = linker.next([Seen(5, (190.0, 100.0, 310.0, 460.0)), Seen(2, CUSTOMER),
                        Seen(7, (650.0, 110.0, 760.0, 460.0))])
    assert 7 not in keep


def test_the_clips_first_frame_shows_the_clerk_unblurred(tmp_path: Path, photo: Callable[[str], Image],
                                                         engine_small_faces: FaceEngine) -> None:
    # given a real frame of two people (the clerk left, the customer right) and their detected faces
    image = np.hstack([fit(photo("biden.jpg")[:1300], 320, 360), fit(photo("obama.jpg"), 320, 360)])
    faces = sorted(((float(x1), float(y1), float(x2), float(y2))
                    for x1, y1, x2, y2 in engine_small_faces.detect(image).xyxy), key=lambda b: b[0])
    assert len(faces) == 2
    clerk_box, customer = (20.0, 0.0, 300.0, 360.0), ClipPerson(3, (340.0, 0.0, 620.0, 360.0), faces[1])
    written = Written()
    recorder = ClipRecorder("counter-1", ClipConfig(pre_roll_s=0.5, post_roll_s=0.25), tmp_path, written,
                            key=CLIP_KEY)
    # when the clerk was track 11 in the pre-roll and became track 1 just as the service started (frame 4)
    for i in range(12):
        t = i * 0.125
        clerk = ClipPerson(11 if i < 4 else 1, clerk_box, faces[0])
        recorder.push(make_frame(i, t, image), [clerk, customer])
        if i == 4:
            recorder.start(ClipParticipants("A", "counter-1", staff_track=1, customer_track=3), T0 + t)
        if i == 8:
            recorder.stop("A", T0 + t)
    recorder.close()
    # then the clip starts in the pre-roll, and its first frame shows both faces sharp: nobody there is a bystander
    (clip,) = written.clips
    assert clip.pre_roll_frames >= 4
    first = decode(clip.path).images[0]
    for face in faces:
        assert laplacian_var(first, face) > 0.4 * laplacian_var(image, face)

