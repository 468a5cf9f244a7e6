"""Open-set identity voting per track.

A single observation votes for the gallery's best person only when its score clears
``threshold`` and beats the runner-up person by ``min_margin``. A track is decided for a person
once that person holds ``min_votes`` votes and more votes than every other person together.
A track that gathers ``max_observations`` without a decision is settled as unknown. The answer
is a :class:`Match` whose ``person_id`` is None for unknown.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from vision.types import Match, SearchResult


@dataclass(frozen=True, slots=True)
class VoterConfig:
    threshold: float
    min_margin: float = 0.0
    min_votes: int = 1
    max_observations: int = 8


@dataclass(slots=True)
class _TrackVotes:
    votes: Counter[str] = field(default_factory=Counter)
    observations: int = 0
    best_score: dict[str, float] = field(default_factory=dict)
    best_margin: dict[str, float] = field(default_factory=dict)
    decided: Match | None = None


class IdentityVoter:
    """State per track id. Only the owning pipeline thread calls it."""

    def __init__(self, config: VoterConfig) -> None:
        self.config = config
        self._tracks: dict[int, _TrackVotes] = {}

    def is_settled(self, track_id: int) -> bool:
        state = self._tracks.get(track_id)
        if state is None:
            return False
        return state.decided is not None or state.observations >= self.config.max_observations

    def decision(self, track_id: int) -> Match | None:
        state = self._tracks.get(track_id)
        return None if state is None else state.decided

    def observe(self, track_id: int, result: SearchResult) -> Match:
        """Add one observation of ``track_id``; return the track's current answer."""
        state = self._tracks.setdefault(track_id, _TrackVotes())
        if state.decided is not None:
            return state.decided
        state.observations += 1
        best = result.best
        if best is not None and best.score >= self.config.threshold and result.margin >= self.config.min_margin:
            state.votes[best.person_id] += 1
            state.best_score[best.person_id] = max(state.best_score.get(best.person_id, -1.0), best.score)
            state.best_margin[best.person_id] = max(state.best_margin.get(best.person_id, -1.0), result.margin)
        if state.votes:
            person, count = state.votes.most_common(1)[0]
            others = sum(state.votes.values()) - count
            if count >= self.config.min_votes and count > others:
                state.decided = Match(person, state.best_score[person], state.best_margin[person], count)
                return state.decided
        score = best.score if best is not None else 0.0
        return Match(None, score, result.margin, sum(state.votes.values()))

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)
