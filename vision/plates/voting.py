"""Per-vehicle plate voting: combine the reads of one plate track character by character.

Each read votes with its per-character confidences. Reads of the most supported length win; at
each position the character with the largest summed confidence wins. A track is decided once, when
it has enough support (``decide_weight`` summed read scores and ``min_reads`` reads with the
winning text's length), or when it ends with at least ``min_reads`` reads.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from vision.plates.grammar import is_plate


@dataclass(frozen=True, slots=True)
class VoterConfig:
    min_reads: int = 2
    decide_weight: float = 2.5  # summed read scores (≈ 3 confident reads) that decide before the track ends
    min_char_share: float = 0.6  # each winning character's share of its position's weight


@dataclass(frozen=True, slots=True)
class CharRead:
    text: str
    char_scores: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.text) != len(self.char_scores):
            raise ValueError("one score per character is needed")

    @property
    def score(self) -> float:
        return min(self.char_scores) if self.char_scores else 0.0


@dataclass(frozen=True, slots=True)
class VoteResult:
    text: str
    score: float  # mean winning share times mean confidence, in [0, 1]
    reads: int
    char_shares: tuple[float, ...]


@dataclass(slots=True)
class _TrackVotes:
    reads: list[CharRead] = field(default_factory=list)
    decided: VoteResult | None = None


def vote(reads: list[CharRead]) -> VoteResult | None:
    """The character-level, confidence-weighted consensus of ``reads`` (valid plates only)."""
    valid = [r for r in reads if r.text and is_plate(r.text)]
    if not valid:
        return None
    by_len: dict[int, float] = defaultdict(float)
    for r in valid:
        by_len[len(r.text)] += r.score
    length = max(by_len, key=lambda n: (by_len[n], n))
    same = [r for r in valid if len(r.text) == length]
    chars: list[str] = []
    shares: list[float] = []
    confidences: list[float] = []
    for i in range(length):
        weights: dict[str, float] = defaultdict(float)
        for r in same:
            weights[r.text[i]] += r.char_scores[i]
        total = sum(weights.values())
        best = max(weights, key=lambda c: weights[c])
        chars.append(best)
        shares.append(weights[best] / total if total > 0 else 0.0)
        confidences.append(max(r.char_scores[i] for r in same if r.text[i] == best))
    text = "".join(chars)
    if not is_plate(text):  # a per-position mix of two kinds: fall back to the strongest single read
        strongest = max(same, key=lambda r: r.score)
        text, shares = strongest.text, [1.0] * length
        confidences = list(strongest.char_scores)
    score = (sum(shares) / length) * (sum(confidences) / length)
    return VoteResult(text, score, len(same), tuple(shares))


class PlateVoter:
    """Votes per track. Owned by one camera's pipeline thread."""

    def __init__(self, config: VoterConfig | None = None) -> None:
        self.config = config or VoterConfig()
        self._tracks: dict[int, _TrackVotes] = {}

    def observe(self, track_id: int, read: CharRead) -> VoteResult | None:
        """Add a read; return the decision the first time the track is decided, else None."""
        state = self._tracks.setdefault(track_id, _TrackVotes())
        if state.decided is not None:
            return None
        state.reads.append(read)
        result = vote(state.reads)
        if result is None or result.reads < self.config.min_reads:
            return None
        support = sum(r.score for r in state.reads if r.text and len(r.text) == len(result.text))
        if support >= self.config.decide_weight and min(result.char_shares) >= self.config.min_char_share:
            state.decided = result
            return result
        return None

    def end(self, track_id: int) -> VoteResult | None:
        """The track has ended: decide it now if it never was (None if too few reads)."""
        state = self._tracks.pop(track_id, None)
        if state is None or state.decided is not None:
            return None
        result = vote(state.reads)
        if result is None or result.reads < self.config.min_reads:
            return None
        return result

    def decision(self, track_id: int) -> VoteResult | None:
        state = self._tracks.get(track_id)
        return None if state is None else state.decided
