"""Track-level open-set evaluation: replay :class:`vision.voter.IdentityVoter` on arrays of gallery
answers, and choose the voter's settings for a target track-level FPIR. Pure numpy, no I/O.

A track is up to ``K`` observations. Each observation is one gallery search, reduced the way the
pipeline reduces it (``Gallery.search(k=2)`` with one template per person, then
``SearchResult.best`` and ``SearchResult.margin``): the best person, its score, and its margin over
the runner-up (``best - max(runner_up, 0)``, or ``best`` when the gallery holds one person). An
observation that did not happen (no face found) has person -1 and score -inf and never votes.

:func:`decide_tracks` gives, per track, the person the voter would decide (or -1 for unknown):
an observation votes when ``score >= threshold`` and ``margin >= min_margin``; the track is decided
at the first observation after which one person holds at least ``min_votes`` votes and more than
all other persons together; a track that ends undecided is unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vision.evaluation import allowed_false_accepts, upper_bound_95

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class TrackSearches:
    """Per track and observation: best person (-1 none), its score (-inf none) and its margin."""

    person: IntArray
    score: FloatArray
    margin: FloatArray

    def __post_init__(self) -> None:
        if self.person.ndim != 2 or self.score.shape != self.person.shape or self.margin.shape != self.person.shape:
            raise ValueError(f"person, score and margin must share one (T, K) shape, got {self.person.shape}, "
                             f"{self.score.shape}, {self.margin.shape}")

    @property
    def n_tracks(self) -> int:
        return int(self.person.shape[0])


def track_searches(scores: npt.ArrayLike) -> TrackSearches:
    """Reduce (T, K, G) similarity scores (-inf rows for missing observations) to gallery answers."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(f"scores must have shape (T, K, G), got {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("scores contain NaN; use -inf for a missing observation")
    t, k, g = arr.shape
    if g == 0:
        empty = np.full((t, k), -np.inf)
        return TrackSearches(np.full((t, k), -1, np.int64), empty, empty.copy())
    order = np.argsort(-arr, axis=2, kind="stable")
    best_idx = order[:, :, 0]
    best = np.take_along_axis(arr, best_idx[:, :, None], axis=2)[:, :, 0]
    runner = np.take_along_axis(arr, order[:, :, 1:2], axis=2)[:, :, 0] if g > 1 else np.zeros((t, k))
    present = np.isfinite(best)
    margin = np.where(present, best - np.maximum(np.where(np.isfinite(runner), runner, 0.0), 0.0), -np.inf)
    person = np.where(present, best_idx, -1).astype(np.int64)
    return TrackSearches(person, np.where(present, best, -np.inf), margin)


def decide_tracks(searches: TrackSearches, threshold: float | FloatArray, min_margin: float = 0.0,
                  min_votes: int = 1) -> IntArray:
    """The person each track is decided for under these voter settings, or -1 (unknown).

    ``threshold`` is one value, or one per track.
    """
    if min_votes < 1:
        raise ValueError("min_votes must be at least 1")
    person, t_count = searches.person, searches.n_tracks
    k = person.shape[1]
    if t_count == 0 or k == 0:
        return np.full(t_count, -1, np.int64)
    thr = np.broadcast_to(np.asarray(threshold, np.float64).reshape(-1, 1), (t_count, 1))
    vote = (person >= 0) & (searches.score >= thr) & (searches.margin >= min_margin)
    # same[t, l, i]: observations l and i both voted, for the same person
    same = (person[:, :, None] == person[:, None, :]) & vote[:, :, None] & vote[:, None, :]
    # count[t, j, i]: votes for observation i's person among observations 0..j, kept for i <= j
    count = np.cumsum(same, axis=1) * np.tril(np.ones((k, k), bool))[None, :, :]
    top = count.max(axis=2)
    total = np.cumsum(vote, axis=1)
    decided_at = (top >= min_votes) & (top > total - top)
    decided = decided_at.any(axis=1)
    first = np.argmax(decided_at, axis=1)
    rows = np.arange(t_count)
    leader = np.argmax(count[rows, first], axis=1)
    out: IntArray = np.where(decided, person[rows, leader], -1).astype(np.int64)
    return out


def decisions_at(searches: TrackSearches, thresholds: npt.ArrayLike, min_margin: float = 0.0,
                 min_votes: int = 1) -> IntArray:
    """(C, T) decisions for C thresholds at once.

    A track's votes, and so its decision, change only at its own vote-eligible scores; the voter is
    replayed once per track and per such score, then each threshold looks its state up.
    """
    grid = np.asarray(thresholds, np.float64).reshape(-1)
    t_count, k = searches.person.shape
    eligible = np.where((searches.person >= 0) & (searches.margin >= min_margin), searches.score, -np.inf)
    ordered = -np.sort(-eligible, axis=1)
    states = TrackSearches(np.repeat(searches.person, k, axis=0), np.repeat(searches.score, k, axis=0),
                           np.repeat(searches.margin, k, axis=0))
    state_thr = np.where(np.isfinite(ordered), ordered, np.inf).reshape(-1)
    decided = decide_tracks(states, state_thr, min_margin, min_votes).reshape(t_count, k)
    n_votes = (eligible[None, :, :] >= grid[:, None, None]).sum(axis=2)
    rows = np.broadcast_to(np.arange(t_count), n_votes.shape)
    out: IntArray = np.where(n_votes > 0, decided[rows, np.maximum(n_votes - 1, 0)], -1).astype(np.int64)
    return out


@dataclass(frozen=True, slots=True)
class VoterPoint:
    """Track-level outcome of one voter setting."""

    threshold: float
    min_margin: float
    min_votes: int
    false_tracks: int
    n_nonmated: int
    fpir: float
    upper95: float
    hits: int
    wrong: int
    n_mated: int
    hit_rate: float
    fnir: float


def voter_point(mated: TrackSearches, mated_truth: npt.ArrayLike, nonmated: TrackSearches, threshold: float,
                min_margin: float, min_votes: int) -> VoterPoint:
    """FPIR over non-mated tracks, hit rate (correct decision) and FNIR over mated tracks."""
    truth = np.asarray(mated_truth, np.int64).reshape(-1)
    if truth.shape[0] != mated.n_tracks:
        raise ValueError(f"{truth.shape[0]} mated identities for {mated.n_tracks} mated tracks")
    decided_m = decide_tracks(mated, threshold, min_margin, min_votes)
    decided_n = decide_tracks(nonmated, threshold, min_margin, min_votes)
    false_tracks = int((decided_n >= 0).sum())
    hits = int((decided_m == truth).sum())
    wrong = int(((decided_m >= 0) & (decided_m != truth)).sum())
    n_n, n_m = nonmated.n_tracks, mated.n_tracks
    fpir = false_tracks / n_n if n_n else math.nan
    hit_rate = hits / n_m if n_m else math.nan
    return VoterPoint(float(threshold), float(min_margin), int(min_votes), false_tracks, n_n, fpir,
                      upper_bound_95(false_tracks, n_n), hits, wrong, n_m, hit_rate, 1.0 - hit_rate)


@dataclass(frozen=True, slots=True)
class VoterCalibration:
    """The chosen setting (None when no candidate met the constraint) and how it was chosen."""

    chosen: VoterPoint | None
    target_fpir: float
    resolved: bool
    allowed_false_tracks: int
    resolution: float
    n_candidates: int


def candidate_thresholds(nonmated: TrackSearches, mated: TrackSearches, decimals: int = 4) -> FloatArray:
    """Thresholds on a ``10**-decimals`` grid just above each non-mated observation's score, plus one
    at or below every score.

    Track FPIR changes only where a non-mated observation's vote appears or disappears, so these are
    the only thresholds worth testing; the grid keeps them short to write in a config file.
    """
    scale = 10.0**decimals
    finite_n = nonmated.score[np.isfinite(nonmated.score)]
    finite_all = np.concatenate([finite_n, mated.score[np.isfinite(mated.score)]])
    if finite_all.size == 0:
        return np.zeros(0)
    lowest = np.floor(finite_all.min() * scale)
    grid = np.unique(np.concatenate([[lowest], np.floor(finite_n * scale) + 1.0])) / scale
    out: FloatArray = np.round(grid, decimals)
    return out


def calibrate_voter(mated: TrackSearches, mated_truth: npt.ArrayLike, nonmated: TrackSearches, target_fpir: float,
                    *, thresholds: npt.ArrayLike | None = None, margins: tuple[float, ...] = (0.0,),
                    votes: tuple[int, ...] = (1,)) -> VoterCalibration:
    """The voter setting with the highest mated hit rate whose track FPIR is at most ``target_fpir``.

    When ``target_fpir * n_nonmated < 1`` the data cannot resolve the target: the constraint
    becomes "no non-mated track decided" and ``resolved`` is False. Ties go to the lower FPIR, then
    the higher threshold, the larger margin and the fewer votes (the more conservative setting).
    """
    if not 0.0 < target_fpir <= 1.0:
        raise ValueError(f"target FPIR must be in (0, 1], got {target_fpir}")
    n_n = nonmated.n_tracks
    allowed = allowed_false_accepts(target_fpir, n_n)
    resolution = 1.0 / n_n if n_n else math.nan
    grid = candidate_thresholds(nonmated, mated) if thresholds is None else np.asarray(thresholds, np.float64)
    truth = np.asarray(mated_truth, np.int64).reshape(-1)
    best: VoterPoint | None = None
    best_key: tuple[float, int, float, float, int] | None = None
    n = 0
    for min_votes in votes:
        for margin in margins:
            n += grid.size
            if n_n == 0 or grid.size == 0:
                continue
            false_tracks = (decisions_at(nonmated, grid, margin, min_votes) >= 0).sum(axis=1)
            feasible = np.flatnonzero(false_tracks <= allowed)
            if feasible.size == 0:
                continue
            decided = decisions_at(mated, grid[feasible], margin, min_votes)
            hits = (decided == truth[None, :]).sum(axis=1)
            for i, h in zip(feasible, hits, strict=True):
                key = (float(h), -int(false_tracks[i]), float(grid[i]), float(margin), -int(min_votes))
                if best_key is None or key > best_key:
                    best_key = key
                    best = voter_point(mated, truth, nonmated, float(grid[i]), margin, min_votes)
    return VoterCalibration(best, target_fpir, allowed >= 1, allowed, resolution, n)
