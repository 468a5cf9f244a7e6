"""Match a read plate against the registered plates with a confusion-aware edit distance.

Substituting one OCR-confusable character for another (0/D/Q/O, 8/B, 1/I/7, 2/Z, 5/S, 6/G)
costs ``confusable_cost``; any other substitution, insertion or deletion costs 1. The province
character is never substituted unless ``allow_province_substitution``. A read that is about
equally near to two different persons' plates is ambiguous: no match, so no alert.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vision.plates.grammar import normalise

CONFUSABLE_GROUPS: tuple[str, ...] = ("0DQO", "8B", "1I7", "2Z", "5S", "6G")


def _pairs(groups: Iterable[str]) -> frozenset[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for group in groups:
        for a in group:
            for b in group:
                if a != b:
                    out.add((a, b))
    return frozenset(out)


CONFUSABLE_PAIRS = _pairs(CONFUSABLE_GROUPS)


@dataclass(frozen=True, slots=True)
class MatcherConfig:
    max_distance: float = 0.5  # exact, or one confusable substitution
    confusable_cost: float = 0.5
    min_margin: float = 0.5  # the runner-up person must be at least this much further away
    allow_province_substitution: bool = False


def plate_distance(a: str, b: str, config: MatcherConfig | None = None) -> float:
    """Weighted Levenshtein distance between two normalised plates."""
    cfg = config or MatcherConfig()
    n, m = len(a), len(b)
    prev = [float(j) for j in range(m + 1)]
    for i in range(1, n + 1):
        cur = [float(i)] + [0.0] * m
        for j in range(1, m + 1):
            if a[i - 1] == b[j - 1]:
                sub = 0.0
            elif i == 1 and j == 1 and not cfg.allow_province_substitution:
                sub = math.inf
            elif (a[i - 1], b[j - 1]) in CONFUSABLE_PAIRS:
                sub = cfg.confusable_cost
            else:
                sub = 1.0
            cur[j] = min(prev[j - 1] + sub, prev[j] + 1.0, cur[j - 1] + 1.0)
        prev = cur
    return prev[m]


@dataclass(frozen=True, slots=True)
class PlateMatch:
    """The matcher's answer. ``person_id`` None: no registered plate is near enough, or ``ambiguous``."""

    read: str
    person_id: str | None
    plate: str | None
    distance: float
    ambiguous: bool = False
    candidates: tuple[tuple[str, str, float], ...] = field(default_factory=tuple)  # (person, plate, distance)


class PlateMatcher:
    """Immutable; build a new one when the registered plates change."""

    def __init__(self, plates: Mapping[str, str], config: MatcherConfig | None = None) -> None:
        """``plates``: normalised plate text -> person id."""
        self.config = config or MatcherConfig()
        self._plates = {normalise(p): person for p, person in plates.items()}

    def __len__(self) -> int:
        return len(self._plates)

    def match(self, read: str) -> PlateMatch:
        text = normalise(read)
        scored = sorted(((plate_distance(text, plate, self.config), plate, person)
                         for plate, person in self._plates.items()), key=lambda s: s[0])
        near = tuple((person, plate, d) for d, plate, person in scored if d <= self.config.max_distance)
        if not near:
            best = scored[0][0] if scored else math.inf
            return PlateMatch(text, None, None, best, candidates=near)
        person, plate, best = near[0]
        rivals = [d for d, _plate, other in scored if other != person]
        if rivals and rivals[0] < best + self.config.min_margin:
            return PlateMatch(text, None, None, best, ambiguous=True, candidates=near)
        return PlateMatch(text, person, plate, best, candidates=near)
