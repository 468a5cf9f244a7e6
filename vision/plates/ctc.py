"""Grammar-constrained CTC decoding of PP-OCR recognition output.

The recogniser scores 6,6xx characters per time step. A plate admits a few dozen, in a fixed order
per kind (:data:`vision.plates.grammar.TEMPLATES`). For each template we run a CTC Viterbi over its
positions, where a position emits any character of its allowed set, and keep the best path over all
templates. A province misread as a similar-looking character, a letter where only digits may stand
or a dropped separator all resolve to the most probable valid plate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vision.plates.errors import PlateModelError
from vision.plates.grammar import PLATE_CHARS, TEMPLATES, Template

_FLOOR = 1e-9
# Printed between the issuing letter and the serial, or read off bolts and frame edges: never a plate
# character, so in constrained decoding these count as "no character here", like the CTC blank.
SEPARATOR_CHARS = "·•・.．-－_:：;；,，'\"`|/\\ "


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded line: the text, one confidence per character and the path's mean log-probability."""

    text: str
    char_scores: tuple[float, ...]
    log_prob: float

    @property
    def score(self) -> float:
        return min(self.char_scores) if self.char_scores else 0.0


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
        self._set_cols: dict[str, npt.NDArray[np.int64]] = {}
        for template in TEMPLATES:
            for chars in template.positions:
                if chars not in self._set_cols:
                    self._set_cols[chars] = np.array([index[c] for c in chars], np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def greedy(self, probs: npt.NDArray[np.float32]) -> Decoded:
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
        log_prob = float(np.mean(np.log(np.maximum(probs.max(axis=1), _FLOOR))))
        return Decoded("".join(text), tuple(scores), log_prob)

    def constrained(self, probs: npt.NDArray[np.float32]) -> Decoded | None:
        """The most probable valid plate under the CTC model, or None for an empty input."""
        steps = probs.shape[0]
        if steps == 0:
            return None
        log_blank = np.log(np.maximum(probs[:, self._gap_cols].sum(axis=1), _FLOOR))
        set_max: dict[str, npt.NDArray[np.float64]] = {}
        set_arg: dict[str, npt.NDArray[np.int64]] = {}
        for chars, cols in self._set_cols.items():
            sub = probs[:, cols]
            arg = sub.argmax(axis=1)
            set_arg[chars] = cols[arg]
            set_max[chars] = np.log(np.maximum(sub[np.arange(steps), arg], _FLOOR)).astype(np.float64)
        best: tuple[float, Template, list[int]] | None = None
        for template in TEMPLATES:
            if 2 * len(template) - 1 > 2 * steps:
                continue
            found = self._viterbi(template, log_blank, set_max, set_arg)
            if found is not None and (best is None or found[0] > best[0]):
                best = (found[0], template, found[1])
        if best is None:
            return None
        total, template, states = best
        text: list[str] = []
        scores: list[float] = []
        for k, allowed in enumerate(template.positions):
            steps_k = [t for t, s in enumerate(states) if s == 2 * k + 1]
            cols = self._set_cols[allowed]
            window = probs[steps_k][:, cols]
            j = int(window.max(axis=0).argmax())
            text.append(allowed[j])
            scores.append(float(window[:, j].max()))
        return Decoded("".join(text), tuple(scores), total / steps)

    @staticmethod
    def _viterbi(template: Template, log_blank: npt.NDArray[np.float64],
                 set_max: dict[str, npt.NDArray[np.float64]],
                 set_arg: dict[str, npt.NDArray[np.int64]]) -> tuple[float, list[int]] | None:
        n_states = 2 * len(template) + 1  # blank, c0, blank, c1, ..., c_{L-1}, blank
        steps = log_blank.shape[0]
        emit = np.empty((steps, n_states), np.float64)
        emit[:, 0::2] = log_blank[:, None]
        label = np.full((steps, n_states), -1, np.int64)  # the character a state emits at each step
        for k, allowed in enumerate(template.positions):
            emit[:, 2 * k + 1] = set_max[allowed]
            label[:, 2 * k + 1] = set_arg[allowed]
        neg = -np.inf
        score = np.full(n_states, neg)
        score[0], score[1] = emit[0, 0], emit[0, 1]
        back = np.zeros((steps, n_states), np.int64)
        odd = np.zeros(n_states, bool)
        odd[1::2] = True
        idx = np.arange(n_states)
        for t in range(1, steps):
            stay = np.where(odd & (label[t] != label[t - 1]), neg, score)  # a character state keeps its label
            step1 = np.concatenate(([neg], score[:-1]))
            step2 = np.concatenate(([neg, neg], score[:-2]))
            # skip the blank only between two different characters (CTC collapses a repeat)
            prev_label = np.concatenate(([-2, -2], label[t - 1, :-2]))
            step2 = np.where(odd & (prev_label != label[t]), step2, neg)
            cand = np.stack([stay, step1, step2])
            arg = cand.argmax(axis=0)
            score = cand[arg, idx] + emit[t]
            back[t] = idx - arg
        end = n_states - 1 if score[n_states - 1] >= score[n_states - 2] else n_states - 2
        if not np.isfinite(score[end]):
            return None
        states = [end]
        for t in range(steps - 1, 0, -1):
            states.append(int(back[t, states[-1]]))
        states.reverse()
        return float(score[end]), states
