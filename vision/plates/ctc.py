"""Grammar-constrained CTC decoding of PP-OCR recognition output.

The recogniser scores 6,6xx characters per time step. A plate admits a few dozen, in a fixed order
per kind (:data:`vision.plates.grammar.TEMPLATES`). All templates are laid side by side in one
lattice (blank, c0, blank, c1, ..., blank per template) and one vectorised Viterbi pass finds the
best path of every template at once, where a position emits any character of its allowed set. A
province misread as a similar-looking character, a letter where only digits may stand or a dropped
separator all resolve to the most probable valid plate.

:meth:`CtcDecoder.log_likelihood` scores given strings exactly (the CTC forward sum over all
alignments); :mod:`vision.plates.rescore` uses it to pick among close alternatives and to combine
several reads of one crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vision.plates.errors import PlateModelError
from vision.plates.grammar import PLATE_CHARS, TEMPLATES, Template

_FLOOR = 1e-9
_NEG = -1e30  # "impossible" that stays finite, so that sums and differences never give NaN
# Printed between the issuing letter and the serial, or read off bolts and frame edges: never a plate
# character, so in constrained decoding these count as "no character here", like the CTC blank.
SEPARATOR_CHARS = "·•・.．-－_:：;；,，'\"`|/\\ "

Probs = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded line: the text, one confidence per character and the path's mean log-probability."""

    text: str
    char_scores: tuple[float, ...]
    log_prob: float

    @property
    def score(self) -> float:
        return min(self.char_scores) if self.char_scores else 0.0


@dataclass(frozen=True, slots=True)
class TemplatePath:
    """The best path of one template: its log score, and per position the allowed characters' best
    probabilities over the steps the path spends on that position (most probable first)."""

    template: Template
    log_score: float
    options: tuple[tuple[tuple[str, float], ...], ...]

    @property
    def text(self) -> str:
        return "".join(opts[0][0] for opts in self.options)

    @property
    def char_scores(self) -> tuple[float, ...]:
        return tuple(opts[0][1] for opts in self.options)


class _Lattice:
    """Every template's states side by side: per state its character set (or the blank) and which
    transitions into it are allowed."""

    def __init__(self, set_index: dict[str, int]) -> None:
        state_set: list[int] = []
        first: list[bool] = []  # the template's first state: nothing enters it from the left
        skip_ok: list[bool] = []  # a character state that may be entered from the previous character
        ends: list[int] = []
        for template in TEMPLATES:
            for k, chars in enumerate(template.positions):
                state_set += [-1, set_index[chars]]
                first += [k == 0, False]
                skip_ok += [False, k > 0]
            state_set.append(-1)
            first.append(False)
            skip_ok.append(False)
            ends.append(len(state_set) - 1)
        self.state_set = np.array(state_set, np.int64)
        self.is_char = self.state_set >= 0
        self.no_step1 = np.array(first, bool)
        self.skip_ok = np.array(skip_ok, bool)
        self.ends = np.array(ends, np.int64)
        self.starts = np.concatenate(([0], self.ends[:-1] + 1))
        self.lengths = np.array([len(t) for t in TEMPLATES], np.int64)


class CtcDecoder:
    """Greedy (unconstrained) and grammar-constrained decoding for one recogniser's character list."""

    def __init__(self, characters: list[str]) -> None:
        # PaddleOCR's layout: class 0 is the CTC blank, then the dictionary, then a space.
        self.labels = ["", *characters, " "]
        index = {c: i for i, c in enumerate(self.labels) if c}
        missing = sorted(c for c in PLATE_CHARS if c not in index)
        if missing:
            raise PlateModelError(f"the recogniser's character list lacks plate characters: {''.join(missing)}")
        self._index = index
        self._gap_cols = np.array(sorted({0, *(index[c] for c in SEPARATOR_CHARS if c in index),
                                          len(self.labels) - 1}), np.int64)
        sets = sorted({chars for template in TEMPLATES for chars in template.positions})
        self._sets = sets
        self._set_cols = [np.array([index[c] for c in chars], np.int64) for chars in sets]
        self._lattice = _Lattice({chars: i for i, chars in enumerate(sets)})

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def greedy(self, probs: Probs) -> Decoded:
        """Best class per step, repeats and blanks removed: what RapidOCR returns."""
        best = probs.argmax(axis=1)
        text: list[str] = []
        scores: list[float] = []
        prev = -1
        for t, k in enumerate(best.tolist()):
            if k != prev and k != 0:
                text.append(self.labels[k])
                scores.append(float(probs[t, k]))
            prev = k
        log_prob = float(np.mean(np.log(np.maximum(probs.max(axis=1), _FLOOR)))) if len(probs) else 0.0
        return Decoded("".join(text), tuple(scores), log_prob)

    def constrained(self, probs: Probs) -> Decoded | None:
        """The most probable valid plate under the CTC model, or None for an empty input."""
        paths = self.template_paths(probs, top=1)
        if not paths:
            return None
        best = paths[0]
        return Decoded(best.text, best.char_scores, best.log_score / probs.shape[0])

    def template_paths(self, probs: Probs, *, top: int = 2, options: int = 3) -> list[TemplatePath]:
        """The best path of each of the ``top`` best-scoring templates, best first (empty for no steps).

        ``options``: how many characters to keep per position, most probable first."""
        steps = probs.shape[0]
        if steps == 0 or probs.ndim != 2 or probs.shape[1] != self.num_classes:
            return []
        lat = self._lattice
        gap = np.log(np.maximum(probs[:, self._gap_cols].sum(axis=1), _FLOOR))
        set_max = np.empty((steps, len(self._sets) + 1), np.float64)
        set_arg = np.full((steps, len(self._sets) + 1), -1, np.int64)
        for j, cols in enumerate(self._set_cols):
            sub = probs[:, cols]
            arg = sub.argmax(axis=1)
            set_arg[:, j] = cols[arg]
            set_max[:, j] = np.log(np.maximum(sub[np.arange(steps), arg], _FLOOR))
        set_max[:, -1] = gap
        emit = set_max[:, lat.state_set]  # state_set -1 picks the last column: the gap
        label = set_arg[:, lat.state_set]
        n = len(lat.state_set)
        score = np.full(n, _NEG)
        score[lat.starts] = emit[0, lat.starts]
        score[lat.starts + 1] = emit[0, lat.starts + 1]
        back = np.zeros((steps, n), np.int8)
        idx = np.arange(n)
        neg1, neg2 = np.full(1, _NEG), np.full(2, _NEG)
        for t in range(1, steps):
            lab, prev = label[t], label[t - 1]
            stay = np.where(lat.is_char & (lab != prev), _NEG, score)  # a character state keeps its label
            step1 = np.where(lat.no_step1, _NEG, np.concatenate((neg1, score[:-1])))
            # skip the blank only between two different characters (CTC collapses a repeat)
            prev_lab = np.concatenate(((-2, -2), prev[:-2]))
            step2 = np.where(lat.skip_ok & (prev_lab != lab), np.concatenate((neg2, score[:-2])), _NEG)
            cand = np.stack([stay, step1, step2])
            arg = cand.argmax(axis=0)
            score = cand[arg, idx] + emit[t]
            back[t] = arg
        end_scores = np.maximum(score[lat.ends], score[lat.ends - 1])
        feasible = (2 * lat.lengths - 1 <= 2 * steps) & (end_scores > _NEG / 2)
        order = [int(i) for i in np.argsort(-end_scores) if feasible[i]][:top]
        return [self._backtrack(probs, back, score, i, options) for i in order]

    def _backtrack(self, probs: Probs, back: npt.NDArray[np.int8], score: npt.NDArray[np.float64],
                   which: int, options: int) -> TemplatePath:
        lat = self._lattice
        template = TEMPLATES[which]
        end = int(lat.ends[which])
        state = end if score[end] >= score[end - 1] else end - 1
        total = float(score[state])
        states = [state]
        for t in range(probs.shape[0] - 1, 0, -1):
            state -= int(back[t, state])
            states.append(state)
        states.reverse()
        rel = np.asarray(states, np.int64) - int(lat.starts[which])
        opts: list[tuple[tuple[str, float], ...]] = []
        for k, allowed in enumerate(template.positions):
            window = probs[rel == 2 * k + 1][:, self._set_cols[self._sets.index(allowed)]].max(axis=0)
            best = np.argsort(-window)[:options]
            opts.append(tuple((allowed[j], float(window[j])) for j in best.tolist()))
        return TemplatePath(template, total, tuple(opts))

    def log_likelihood(self, probs: Probs, texts: list[str]) -> npt.NDArray[np.float64]:
        """log P(text | probs) for each text: the CTC forward sum over every alignment, where
        separators and the space count as blank. Texts may differ in length; unknown characters
        and texts too long for the steps score about -1e30."""
        out = np.full(len(texts), _NEG)
        by_len: dict[int, list[int]] = {}
        for i, text in enumerate(texts):
            if text and all(c in self._index for c in text):
                by_len.setdefault(len(text), []).append(i)
        if probs.ndim != 2 or probs.shape[0] == 0 or not by_len:
            return out
        log_p = np.log(np.maximum(probs, _FLOOR)).astype(np.float64)
        log_p[:, 0] = np.log(np.maximum(probs[:, self._gap_cols].sum(axis=1), _FLOOR))
        for length, members in by_len.items():
            out[members] = self._forward(log_p, [texts[i] for i in members], length)
        return out

    def _forward(self, log_p: npt.NDArray[np.float64], texts: list[str], length: int) -> npt.NDArray[np.float64]:
        steps, states, count = log_p.shape[0], 2 * length + 1, len(texts)
        if 2 * length - 1 > 2 * steps:
            return np.full(count, _NEG)
        ext = np.zeros((count, states), np.int64)  # column 0 of log_p holds the blank (gap) score
        ext[:, 1::2] = [[self._index[c] for c in text] for text in texts]
        skip_ok = np.zeros((count, states), bool)
        skip_ok[:, 3::2] = ext[:, 3::2] != ext[:, 1:-2:2]
        emit = log_p[:, ext]  # (steps, count, states)
        alpha = np.full((count, states), _NEG)
        alpha[:, :2] = emit[0, :, :2]
        neg1, neg2 = np.full((count, 1), _NEG), np.full((count, 2), _NEG)
        for t in range(1, steps):
            step1 = np.concatenate((neg1, alpha[:, :-1]), axis=1)
            step2 = np.where(skip_ok, np.concatenate((neg2, alpha[:, :-2]), axis=1), _NEG)
            top = np.maximum(np.maximum(alpha, step1), step2)
            alpha = top + np.log(np.exp(alpha - top) + np.exp(step1 - top) + np.exp(step2 - top)) + emit[t]
        result: npt.NDArray[np.float64] = np.logaddexp(alpha[:, -1], alpha[:, -2])
        return np.maximum(result, _NEG)
