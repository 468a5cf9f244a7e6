"""IdentityVoter: per-track open-set decision from a sequence of gallery answers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from vision.engines.base import FaceEngine
from vision.gallery import Gallery
from vision.types import GalleryHit, Image, Match, SearchResult
from vision.voter import IdentityVoter, VoterConfig


def _r(*hits: tuple[str, float]) -> SearchResult:
    return SearchResult(tuple(GalleryHit(p, s) for p, s in hits))


EMPTY = SearchResult()


@pytest.mark.parametrize(
    ("config", "observations", "person", "votes"),
    [
        # nothing to vote on
        (VoterConfig(threshold=0.9), [EMPTY], None, 0),
        (VoterConfig(threshold=0.9), [EMPTY, EMPTY, EMPTY], None, 0),
        # below threshold: no vote
        (VoterConfig(threshold=0.9), [_r(("a", 0.89))], None, 0),
        # at and above threshold with min_votes=1: decided at once
        (VoterConfig(threshold=0.9), [_r(("a", 0.9))], "a", 1),
        (VoterConfig(threshold=0.9), [_r(("a", 0.95), ("b", 0.2))], "a", 1),
        # min_votes=2 needs two votes
        (VoterConfig(threshold=0.9, min_votes=2), [_r(("a", 0.95))], None, 1),
        (VoterConfig(threshold=0.9, min_votes=2), [_r(("a", 0.95)), _r(("a", 0.93))], "a", 2),
        (VoterConfig(threshold=0.9, min_votes=2), [_r(("a", 0.95)), _r(("a", 0.5)), _r(("a", 0.93))], "a", 2),
        # margin over the runner-up below min_margin: no vote
        (VoterConfig(threshold=0.9, min_margin=0.1), [_r(("a", 0.95), ("b", 0.9))], None, 0),
        (VoterConfig(threshold=0.9, min_margin=0.1), [_r(("a", 0.95), ("b", 0.8))], "a", 1),
        # min_votes=2, conflicting votes: a, b, a -> a holds 2 votes, more than the others' 1
        (VoterConfig(threshold=0.9, min_votes=2), [_r(("a", 0.95)), _r(("b", 0.95)), _r(("a", 0.95))], "a", 2),
        # a, b, c, a -> a holds 2 votes but not more than the others together (2): no decision
        (VoterConfig(threshold=0.9, min_votes=2), [_r(("a", 0.95)), _r(("b", 0.95)), _r(("c", 0.95)),
                                                   _r(("a", 0.95))], None, 4),
        (VoterConfig(threshold=0.9, min_votes=1), [_r(("a", 0.5)), _r(("b", 0.97))], "b", 1),
    ],
    ids=["empty", "three-empty", "below-threshold", "at-threshold", "above-threshold", "min2-one-vote",
         "min2-two-votes", "min2-with-a-miss", "margin-too-small", "margin-enough", "conflict-majority",
         "no-majority", "miss-then-hit"],
)
def test_voting_table(config: VoterConfig, observations: list[SearchResult], person: str | None,
                      votes: int) -> None:
    # given a voter, when a track is observed with these gallery answers in order
    voter = IdentityVoter(config)
    answers = [voter.observe(1, r) for r in observations]
    # then the last answer names the expected person (or unknown) with the expected vote count
    last = answers[-1]
    assert last.person_id == person
    assert last.votes == votes
    assert (voter.decision(1) is not None) == (person is not None)


def test_an_undecided_answer_reports_the_current_best_score_and_margin() -> None:
    # given a voter, when an observation falls short of the threshold
    voter = IdentityVoter(VoterConfig(threshold=0.9))
    answer = voter.observe(1, _r(("a", 0.7), ("b", 0.4)))
    # then the answer is unknown (None, never "unknown") with that observation's score and margin
    assert answer.person_id is None and answer.votes == 0
    assert answer.score == pytest.approx(0.7) and answer.margin == pytest.approx(0.3)
    assert voter.observe(2, EMPTY) == Match(None, 0.0, 0.0, 0)


def test_a_decision_reports_the_best_score_and_margin_seen_for_that_person() -> None:
    # given min_votes=2, when the person is seen at 0.92 (margin 0.5) then 0.97 (margin 0.1)
    voter = IdentityVoter(VoterConfig(threshold=0.9, min_votes=2))
    voter.observe(1, _r(("a", 0.92), ("b", 0.42)))
    decided = voter.observe(1, _r(("a", 0.97), ("b", 0.87)))
    # then the decision carries the best score and the best margin
    assert decided.person_id == "a" and decided.votes == 2
    assert decided.score == pytest.approx(0.97) and decided.margin == pytest.approx(0.5)


def test_conflicting_votes_the_first_decision_stays() -> None:
    # given min_votes=1, when A is seen then B
    voter = IdentityVoter(VoterConfig(threshold=0.9))
    first = voter.observe(7, _r(("A", 0.95)))
    second = voter.observe(7, _r(("B", 0.99)))
    # then A was decided first and stays decided; B's observation is ignored
    assert first.person_id == "A"
    assert second == first
    assert voter.decision(7) == first
    assert voter.is_settled(7)


def test_tracks_are_independent() -> None:
    # given two tracks, when one sees A and the other B, then each is decided for its own person
    voter = IdentityVoter(VoterConfig(threshold=0.9))
    voter.observe(1, _r(("A", 0.95)))
    voter.observe(2, _r(("B", 0.95)))
    assert voter.decision(1) is not None and voter.decision(1).person_id == "A"  # type: ignore[union-attr]
    assert voter.decision(2) is not None and voter.decision(2).person_id == "B"  # type: ignore[union-attr]
    assert voter.decision(3) is None and not voter.is_settled(3)


@pytest.mark.parametrize("max_observations", [1, 3])
def test_max_observations_settles_a_track_as_unknown(max_observations: int) -> None:
    # given a voter, when a track is observed max_observations times without a vote
    voter = IdentityVoter(VoterConfig(threshold=0.9, max_observations=max_observations))
    settled = []
    for _ in range(max_observations):
        settled.append(voter.is_settled(1))
        voter.observe(1, _r(("a", 0.5)))
    # then it is settled only after the last one, without a decision
    assert settled == [False] * max_observations
    assert voter.is_settled(1) and voter.decision(1) is None


def test_forget_resets_a_track() -> None:
    # given a decided track
    voter = IdentityVoter(VoterConfig(threshold=0.9))
    voter.observe(1, _r(("a", 0.95)))
    assert voter.is_settled(1)
    # when it is forgotten
    voter.forget(1)
    # then it starts afresh, and forgetting an unknown id is a no-op
    assert not voter.is_settled(1) and voter.decision(1) is None
    assert voter.observe(1, _r(("b", 0.95))).person_id == "b"
    voter.forget(12345)


def test_real_photos_vote_for_obama_and_not_for_biden(photo: Callable[[str], Image], engine: FaceEngine) -> None:
    # given a gallery holding the real obama.jpg embedding
    def embed(name: str) -> np.ndarray:
        image = photo(name)
        return engine.embed(image, engine.detect(image))

    gallery = Gallery(engine.model_id, engine.dim)
    gallery.add("obama", embed("obama.jpg"))
    [obama2, biden] = gallery.search(np.concatenate([embed("obama2.jpg"), embed("biden.jpg")]))
    # and a threshold halfway between the two scores
    assert obama2.best is not None and biden.best is not None
    voter = IdentityVoter(VoterConfig(threshold=(obama2.best.score + biden.best.score) / 2))
    # when one track shows obama2.jpg and another biden.jpg
    # then the first is decided for Obama and the second stays unknown
    assert voter.observe(1, obama2).person_id == "obama"
    assert voter.observe(2, biden).person_id is None
