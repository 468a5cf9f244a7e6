"""Pick a plate by its exact CTC likelihood, over one or several reads of the same crop.

The grammar-constrained Viterbi (:meth:`CtcDecoder.template_paths`) gives, per template, the best
path and per position the next most probable characters. Candidates are that path's text and its
variants with up to ``max_substitutions`` positions swapped for an alternative that the recogniser
gave at least ``min_option_prob``. Each candidate is scored by the CTC forward sum over all
alignments, summed over the reads (a product of experts: log-probabilities add, strings are never
voted), and the best candidate wins. Its per-character confidence is the reads' mean probability
for that character over the steps their best path spends on its position (as in plain constrained
decoding, so that ``min_score`` keeps its meaning).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from vision.plates.ctc import CtcDecoder, Decoded, Probs, TemplatePath

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RescoreConfig:
    templates: int = 1  # best templates per read whose paths seed candidates
    min_option_prob: float = 1e-3  # an alternative character must reach this probability
    max_substitutions: int = 2
    max_candidates: int = 256


def _candidates(path: TemplatePath, config: RescoreConfig) -> list[str]:
    base = list(path.text)
    swaps = [(k, c) for k, opts in enumerate(path.options) for c, p in opts[1:] if p >= config.min_option_prob]
    out = [path.text]
    for n in range(1, config.max_substitutions + 1):
        for combo in itertools.combinations(swaps, n):
            if len({k for k, _ in combo}) < n:
                continue
            text = base[:]
            for k, c in combo:
                text[k] = c
            out.append("".join(text))
            if len(out) >= config.max_candidates:
                return out
    return out


def rescore(decoder: CtcDecoder, reads: list[Probs], config: RescoreConfig | None = None) -> Decoded | None:
    """The most likely valid plate given every read in ``reads`` (CTC probabilities of one crop each),
    or None when no read has a feasible plate path."""
    config = config or RescoreConfig()
    paths = [decoder.template_paths(p, top=config.templates) for p in reads]
    pool: dict[str, None] = {}
    for read_paths in paths:
        for path in read_paths:
            pool.update(dict.fromkeys(_candidates(path, config)))
    if not pool:
        return None
    texts = list(pool)
    total = np.zeros(len(texts))
    for p in reads:
        total += decoder.log_likelihood(p, texts)
    best = int(total.argmax())
    text = texts[best]
    # per read, the path of a template that admits the winner: its probabilities per position
    aligned = [next((path for path in read_paths if path.template.matches(text)), None) for read_paths in paths]
    scores: list[float] = []
    for k, char in enumerate(text):
        probs = [dict(path.options[k]).get(char, 0.0) for path in aligned if path is not None]
        scores.append(sum(probs) / len(probs) if probs else 0.0)
    steps = sum(p.shape[0] for p in reads)
    return Decoded(text, tuple(scores), float(total[best]) / max(steps, 1))
