"""Who is a participant in each frame of a clip, from its first frame on: blur is for bystanders only.

An interaction names two person tracks, the clerk's and the customer's, as they were when it started. The
frames before that (the pre-roll, taken from the ring) may show the same two people under other track ids:
the IoU tracker starts a new track when someone moves far between two processed frames (a busy box processes
few frames, and the clerk walks over to the counter just before the service starts), so the clerk was another
track in the first half-second of the clip, and blurring by track id alone blurred him there.

The rule, in every frame: a person is a participant when
- their track is one of the participants' tracks (the interaction's two, or one linked to them below), or
- their face identity is the clerk's or the VIP customer's (when the track carries one), or
- their box continues a participant's box of the neighbouring frame: the person overlapping it most, with an
  IoU of at least :data:`LINK_IOU`, or else the nearest whose centre lies within :data:`LINK_REACH` box sizes
  of it. The pre-roll is walked backwards from the frames where the interaction's tracks are, the rest of the
  clip forwards. A participant missed by the detector in a frame keeps their last box for up to
  :data:`CARRY_FRAMES` frames, so one missed detection does not break the chain.
A track linked once is a participant's in every frame of the clip. Never linked: a track seen in one frame
beside all the participants (that is someone else), and a face identified as another person. Everyone who is
not a participant is a bystander, and blurred.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge.clips.frames import Box, PersonLike

LINK_IOU = 0.1  # a box that overlaps a participant's box of the neighbouring frame this much continues it
LINK_REACH = 0.75  # or, without overlap, a centre within this many (larger) box sides of the participant's
CARRY_FRAMES = 3  # a participant not found in a frame is looked for near their last box this many frames on


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reach(a: Box, b: Box) -> float:
    """The distance between the boxes' centres, in sides of ``a`` (its larger side)."""
    side = max(a[2] - a[0], a[3] - a[1], 1e-6)
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    return float((dx * dx + dy * dy) ** 0.5 / side)


@dataclass(slots=True)
class _Chain:
    """One participant as last seen: their box, and how many frames ago it was seen."""

    box: Box
    missed: int = 0


class ParticipantLinker:
    """The participants of one clip, frame by frame (see the module's doc). One thread uses it: the clip's
    encoder. :meth:`backfill` takes the pre-roll once; :meth:`next` takes each later frame in order."""

    def __init__(self, tracks: Iterable[int], identities: Iterable[str | None] = ()) -> None:
        self.tracks: set[int] = set(tracks)
        self._count = len(self.tracks)
        self.identities = frozenset(i for i in identities if i)
        self._others: set[int] = set()  # tracks seen beside every participant: someone else, never linked
        self._chains: list[_Chain] = []

    def _direct(self, person: PersonLike) -> bool:
        if person.track_id in self.tracks:
            return True
        identity = getattr(person, "person_id", None)  # vision.people.PersonView carries the face's identity
        return identity is not None and identity in self.identities

    def _linkable(self, person: PersonLike) -> bool:
        """Someone a chain may continue: not a track seen beside all the participants, not another identity."""
        if person.track_id in self._others:
            return False
        identity = getattr(person, "person_id", None)
        return identity is None or identity in self.identities

    def _step(self, people: Sequence[PersonLike], chains: list[_Chain]) -> tuple[frozenset[int], list[_Chain]]:
        """The participants of one frame, given the chains from its neighbour; the chains for the next step.

        Chains and people are paired one to one, best pairs first (most overlap, then nearest): a chain paired
        with a directly known participant is that participant; one paired with anyone else links that person."""
        keep = {p.track_id for p in people if self._direct(p)}
        if len(keep) >= self._count:
            self._others |= {p.track_id for p in people if p.track_id not in keep}
        pairs = sorted(((iou(c.box, p.box), -reach(c.box, p.box), ci, pi) for ci, c in enumerate(chains)
                        for pi, p in enumerate(people) if self._linkable(p)), reverse=True)
        chain_of: dict[int, int] = {}  # chain index -> person index
        taken: set[int] = set()
        for overlap, near, ci, pi in pairs:
            if ci in chain_of or pi in taken or (overlap < LINK_IOU and -near > LINK_REACH):
                continue
            chain_of[ci] = pi
            taken.add(pi)
        for pi in chain_of.values():
            if people[pi].track_id not in keep:
                keep.add(people[pi].track_id)
                self.tracks.add(people[pi].track_id)
        out = [_Chain(p.box) for p in people if p.track_id in keep]
        out += [_Chain(c.box, c.missed + 1) for ci, c in enumerate(chains)
                if ci not in chain_of and c.missed < CARRY_FRAMES]
        return frozenset(keep), out

    def backfill(self, frames: Sequence[Sequence[PersonLike]]) -> list[frozenset[int]]:
        """The participants' track ids in each of ``frames`` (the pre-roll, oldest first), walked from the newest
        back; the forward walk of :meth:`next` then goes on from the newest."""
        keeps: list[frozenset[int]] = [frozenset()] * len(frames)
        chains: list[_Chain] = []
        for i in range(len(frames) - 1, -1, -1):
            keeps[i], chains = self._step(frames[i], chains)
            if i == len(frames) - 1:
                self._chains = chains
        # the walk back may have linked tracks that also show in later pre-roll frames
        return [k | frozenset(p.track_id for p in people if p.track_id in self.tracks)
                for k, people in zip(keeps, frames, strict=True)]

    def next(self, people: Sequence[PersonLike]) -> frozenset[int]:
        """The participants' track ids in the next frame of the clip."""
        keep, self._chains = self._step(people, self._chains)
        return keep

