"""Faces at a counter are looked for while someone in view still needs one, and at an interval otherwise.

At a counter, a face serves to tell who a person is (staff, a VIP customer), and the person's track keeps the
identity its face gave it (:mod:`vision.people`). Once everyone in view is settled, looking for their faces on
every frame changes nothing but the cost: face detection, landmarks and alignment were two thirds of a counter
frame. The rule, per frame, from the people of the previous frame:

- ``first``: faces were never looked for;
- ``new``: someone is still unsettled: no identity, no face settled by the voter (decided, or unknown after
  its observations) since their person track began, and fewer than ``max_looks`` looks since they appeared
  (someone who never shows a face stops holding the camera at every frame after that). A person stays settled
  while their track lasts, even when their face track ends between two looks and a new one begins;
- ``due``: ``interval_s`` has passed since the last look: catches a change of person the person tracker missed,
  gives a face settled as unknown its chance of a better view (a VIP recognised late), and keeps face boxes
  fresh;
- ``carried``: otherwise. Each person keeps the face box they had, moved with their body (:mod:`vision.people`).

A look goes where the camera's motion gate says (what moves, and the faces found last), and at the heads of the
people not looked at yet since they appeared (:meth:`FaceCadence.heads`): someone who walked in between two
looks and stopped. Not thread-safe: the camera's pipeline thread owns it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vision.people import PersonView

FaceDecision = Literal["first", "new", "due", "carried"]
LOOKS: frozenset[FaceDecision] = frozenset({"first", "new", "due"})


class FaceCadenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True,
                          description="On a motion-gated counter camera, look for faces only while someone in view "
                                      "is unsettled, and every interval_s otherwise. Off: on every frame.")
    interval_s: float = Field(default=1.0, gt=0.0, le=10.0,
                              description="Longest time between two face looks while everyone in view is settled.")
    max_looks: int = Field(default=16, ge=1, le=1000,
                           description="Looks after which a person who showed no settled face stops counting as new.")


class FaceCadence:
    """One counter camera's face cadence (see the module docstring): :meth:`decide` before each frame's faces,
    :meth:`looked` after each look."""

    def __init__(self, config: FaceCadenceConfig) -> None:
        self.config = config
        self._last: float | None = None  # when faces were last looked for
        self._looks: dict[int, int] = {}  # person track -> looks since it appeared
        self._settled: set[int] = set()  # person tracks whose face was settled once
        self.unsettled: list[PersonView] = []  # the people the last decision found unsettled

    def _is_settled(self, view: PersonView, face_settled: Callable[[int], bool]) -> bool:
        if view.person_id is not None or view.track_id in self._settled:
            return True
        if view.face_track is not None and face_settled(view.face_track):
            self._settled.add(view.track_id)
            return True
        return self._looks.get(view.track_id, 0) >= self.config.max_looks

    def decide(self, people: Sequence[PersonView], face_settled: Callable[[int], bool], t: float) -> FaceDecision:
        """Whether to look for faces on the frame at ``t``, given the previous frame's ``people`` and whether a
        face track is settled."""
        self.unsettled = [v for v in people if not self._is_settled(v, face_settled)]
        if self._last is None:
            return "first"
        if self.unsettled:
            return "new"
        return "due" if t - self._last >= self.config.interval_s else "carried"

    def looked(self, people: Sequence[PersonView], t: float) -> None:
        """Faces were looked for at ``t``; ``people`` are that frame's people."""
        self._last = t
        self._looks = {v.track_id: self._looks.get(v.track_id, 0) + 1 for v in people}
        self._settled &= self._looks.keys()  # person tracks that ended are forgotten

    def heads(self, head_fraction: float) -> list[tuple[float, float, float, float]]:
        """The head regions (top ``head_fraction`` of the box) of the unsettled people not looked at yet."""
        return [(v.box[0], v.box[1], v.box[2], v.box[1] + head_fraction * (v.box[3] - v.box[1]))
                for v in self.unsettled if v.track_id not in self._looks]
