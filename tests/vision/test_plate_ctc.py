"""Grammar-constrained CTC decoding and likelihood rescoring on synthetic CTC outputs (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from vision.plates.ctc import CtcDecoder, Probs
from vision.plates.errors import PlateModelError
from vision.plates.grammar import PLATE_CHARS
from vision.plates.rescore import RescoreConfig, rescore

CHARS = [*sorted(PLATE_CHARS), "·", "X1"]  # a separator and a non-plate label, like the real list


@pytest.fixture(scope="module")
def decoder() -> CtcDecoder:
    return CtcDecoder(CHARS)


def _probs(decoder: CtcDecoder, steps: list[dict[str, float]]) -> Probs:
    """One row per step: the given labels' probabilities, the rest to the blank."""
    out = np.zeros((len(steps), decoder.num_classes), np.float32)
    for t, step in enumerate(steps):
        for label, p in step.items():
            out[t, decoder.labels.index(label)] = p
        out[t, 0] = max(0.0, 1.0 - sum(step.values()))
    return out


def _plate(decoder: CtcDecoder, text: str, *, confusions: dict[int, dict[str, float]] | None = None) -> Probs:
    """Two steps per character with a blank between; ``confusions`` moves mass at position k."""
    steps: list[dict[str, float]] = []
    for k, c in enumerate(text):
        step = dict((confusions or {}).get(k, {c: 0.95}))
        steps += [step, step, {}]
    return _probs(decoder, steps)


@pytest.mark.parametrize(("text", "confusions", "expected"), [
    ("皖A12345", None, "皖A12345"),
    ("皖AD11166", None, "皖AD11166"),  # new energy, 8 characters
    ("京A0006警", None, "京A0006警"),
    # a letter where only digits may stand: the digit with the most mass wins
    ("皖AD11166", {5: {"B": 0.6, "1": 0.3}}, "皖AD11166"),
    # the province misread as a non-province: the best province wins
    ("皖A12345", {0: {"X1": 0.7, "皖": 0.2}}, "皖A12345"),
])
def test_constrained_decoding(decoder: CtcDecoder, text: str, confusions: dict[int, dict[str, float]] | None,
                              expected: str) -> None:
    decoded = decoder.constrained(_plate(decoder, text, confusions=confusions))
    assert decoded is not None
    assert decoded.text == expected
    assert len(decoded.char_scores) == len(expected)
    assert all(0.0 <= s <= 1.0 for s in decoded.char_scores)


def test_separator_counts_as_blank(decoder: CtcDecoder) -> None:
    steps = [{"皖": 0.9}, {}, {"A": 0.9}, {"·": 0.9}, *[s for c in "12345" for s in ({c: 0.9}, {})]]
    decoded = decoder.constrained(_probs(decoder, steps))
    assert decoded is not None and decoded.text == "皖A12345"


def test_repeated_character_needs_a_blank(decoder: CtcDecoder) -> None:
    # 皖A11234: the two 1s are only two characters when a blank separates them
    decoded = decoder.constrained(_plate(decoder, "皖A11234"))
    assert decoded is not None and decoded.text == "皖A11234"


@pytest.mark.parametrize("probs", [
    np.zeros((0, len(CHARS) + 2), np.float32),  # no steps
    np.full((3, len(CHARS) + 2), 1.0 / (len(CHARS) + 2), np.float32),  # too short for any plate
    np.zeros((30, 5), np.float32),  # wrong number of classes
])
def test_no_plate_from_bad_input(decoder: CtcDecoder, probs: Probs) -> None:
    assert decoder.constrained(probs) is None
    assert decoder.template_paths(probs) == []
    assert rescore(decoder, [probs]) is None


def test_template_paths_offer_alternatives(decoder: CtcDecoder) -> None:
    paths = decoder.template_paths(_plate(decoder, "皖A12345", confusions={6: {"5": 0.6, "S": 0.3}}), top=2)
    assert paths[0].text == "皖A12345"
    assert [c for c, _ in paths[0].options[6][:2]] == ["5", "S"]
    assert paths[0].log_score >= paths[-1].log_score


@pytest.mark.parametrize(("texts", "best"), [
    (["皖A12345", "皖A12346", "皖A1234"], 0),
    (["皖A1234", "皖A12345"], 1),
])
def test_log_likelihood_ranks_the_true_text_first(decoder: CtcDecoder, texts: list[str], best: int) -> None:
    scores = decoder.log_likelihood(_plate(decoder, "皖A12345"), texts)
    assert int(scores.argmax()) == best
    assert np.all(np.isfinite(scores))


@pytest.mark.parametrize("texts", [[""], ["皖A1234Ω"], ["皖" * 40]])
def test_log_likelihood_of_impossible_texts(decoder: CtcDecoder, texts: list[str]) -> None:
    assert decoder.log_likelihood(_plate(decoder, "皖A12345"), texts)[0] < -1e20


def test_rescore_sums_reads(decoder: CtcDecoder) -> None:
    # each read alone leans the wrong way at a different position; together they agree on the truth
    one = _plate(decoder, "皖AG6512", confusions={2: {"6": 0.5, "G": 0.45}})
    two = _plate(decoder, "皖AG6512", confusions={2: {"G": 0.9, "6": 0.05}, 3: {"G": 0.5, "6": 0.45}})
    assert decoder.constrained(one) is not None and decoder.constrained(one).text == "皖A66512"  # type: ignore[union-attr]
    fused = rescore(decoder, [one, two])
    assert fused is not None and fused.text == "皖AG6512"
    assert len(fused.char_scores) == 7 and min(fused.char_scores) > 0.2


def test_rescore_single_read_matches_constrained(decoder: CtcDecoder) -> None:
    probs = _plate(decoder, "沪AF12345")
    fused = rescore(decoder, [probs], RescoreConfig(max_substitutions=0))
    plain = decoder.constrained(probs)
    assert fused is not None and plain is not None and fused.text == plain.text


def test_missing_plate_characters_are_refused() -> None:
    with pytest.raises(PlateModelError):
        CtcDecoder(list("0123456789"))
