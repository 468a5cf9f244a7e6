"""Track-level voting replay and voter calibration on synthetic gallery answers."""

from __future__ import annotations

import numpy as np
import pytest

from vision.track_evaluation import (
    TrackSearches,
    calibrate_voter,
    decide_tracks,
    decisions_at,
    track_searches,
    voter_point,
)
from vision.types import GalleryHit, SearchResult
from vision.voter import IdentityVoter, VoterConfig

INF = float("inf")


def answers(*observations: tuple[int, float, float]) -> TrackSearches:
    """One track from (person, score, margin) observations; person -1 is a missing observation."""
    person = np.array([[o[0] for o in observations]], np.int64).reshape(1, -1)
    score = np.array([[o[1] for o in observations]], np.float64).reshape(1, -1)
    margin = np.array([[o[2] for o in observations]], np.float64).reshape(1, -1)
    return TrackSearches(person, score, margin)


A, B, C = 0, 1, 2


@pytest.mark.parametrize(
    ("observations", "config", "decided"),
    [
        ([], VoterConfig(0.9), -1),
        ([(-1, -INF, -INF)] * 3, VoterConfig(0.9), -1),
        ([(A, 0.89, 0.5)], VoterConfig(0.9), -1),
        ([(A, 0.9, 0.5)], VoterConfig(0.9), A),
        ([(A, 0.95, 0.5)], VoterConfig(0.9, min_votes=2), -1),
        ([(A, 0.95, 0.5), (A, 0.5, 0.1), (A, 0.93, 0.5)], VoterConfig(0.9, min_votes=2), A),
        ([(A, 0.95, 0.05)], VoterConfig(0.9, min_margin=0.1), -1),
        ([(A, 0.95, 0.15)], VoterConfig(0.9, min_margin=0.1), A),
        ([(A, 0.95, 0.5), (B, 0.95, 0.5), (A, 0.95, 0.5)], VoterConfig(0.9, min_votes=2), A),
        ([(A, 0.95, 0.5), (B, 0.95, 0.5), (C, 0.95, 0.5), (A, 0.95, 0.5)], VoterConfig(0.9, min_votes=2), -1),
        ([(A, 0.95, 0.5), (B, 0.99, 0.5)], VoterConfig(0.9), A),  # the first decision stays
        ([(A, 0.5, 0.5), (B, 0.97, 0.5)], VoterConfig(0.9), B),
    ],
    ids=["no-observation", "no-face", "below", "at", "min2-one", "min2-with-miss", "margin-small",
         "margin-enough", "majority", "no-majority", "first-stays", "miss-then-hit"],
)
def test_decide_tracks_follows_the_voter_table(observations: list[tuple[int, float, float]], config: VoterConfig,
                                               decided: int) -> None:
    searches = answers(*observations) if observations else TrackSearches(
        np.zeros((1, 0), np.int64), np.zeros((1, 0)), np.zeros((1, 0)))
    got = decide_tracks(searches, config.threshold, config.min_margin, config.min_votes)
    assert got.tolist() == [decided]


def _search_result(row: np.ndarray) -> SearchResult:
    order = np.argsort(-row, kind="stable")[:2]
    return SearchResult(tuple(GalleryHit(str(i), float(row[i])) for i in order if np.isfinite(row[i])))


@pytest.mark.parametrize(("threshold", "margin", "votes"), [(0.8, 0.0, 1), (0.85, 0.05, 2), (0.7, 0.0, 3)])
def test_decide_tracks_matches_the_real_voter_on_random_tracks(threshold: float, margin: float, votes: int) -> None:
    # given 200 random tracks of 6 observations over a 4-person gallery, some observations missing
    rng = np.random.default_rng(3)
    scores = rng.uniform(0.5, 1.0, (200, 6, 4))
    scores[rng.random((200, 6)) < 0.2] = -INF
    searches = track_searches(scores)
    # when replayed in arrays and through IdentityVoter (a missing observation is no observation)
    replayed = decide_tracks(searches, threshold, margin, votes)
    expected = []
    for track in range(200):
        voter = IdentityVoter(VoterConfig(threshold, margin, votes, max_observations=6))
        for row in scores[track]:
            if np.isfinite(row).any():
                voter.observe(track, _search_result(row))
        decision = voter.decision(track)
        expected.append(-1 if decision is None or decision.person_id is None else int(decision.person_id))
    # then both decide the same person for every track
    assert replayed.tolist() == expected


def test_track_searches_reduce_like_the_gallery() -> None:
    scores = np.array([[[0.9, 0.6, 0.1], [-INF, -INF, -INF], [0.3, -0.2, -0.5]]])
    searches = track_searches(scores)
    assert searches.person.tolist() == [[0, -1, 0]]
    assert searches.margin[0].tolist() == pytest.approx([0.3, -INF, 0.3])  # runner-up below 0 counts as 0
    one = track_searches(np.array([[[0.7]]]))
    assert one.margin.tolist() == [[0.7]]  # one person: margin over nobody
    empty = track_searches(np.zeros((2, 3, 0)))
    assert (empty.person == -1).all()
    with pytest.raises(ValueError, match="shape"):
        track_searches(np.zeros((3, 4)))


def test_decisions_at_many_thresholds_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(5)
    scores = np.round(rng.uniform(0.5, 1.0, (80, 5, 6)), 2)  # rounded: ties on purpose
    searches = track_searches(scores)
    grid = np.linspace(0.5, 1.01, 40)
    for margin, votes in [(0.0, 1), (0.03, 2), (0.0, 3)]:
        at_once = decisions_at(searches, grid, margin, votes)
        one_by_one = np.stack([decide_tracks(searches, g, margin, votes) for g in grid])
        assert np.array_equal(at_once, one_by_one)


def _tracks(rows: list[list[tuple[int, float, float]]]) -> TrackSearches:
    return TrackSearches(np.array([[o[0] for o in r] for r in rows], np.int64),
                         np.array([[o[1] for o in r] for r in rows], np.float64),
                         np.array([[o[2] for o in r] for r in rows], np.float64))


def test_calibration_picks_the_lowest_threshold_that_keeps_the_target() -> None:
    # given 100 stranger tracks whose one observation scores 0.500 .. 0.599, and mated tracks above
    # every stranger (0.5995), between the two highest (0.5985), lower (0.595) and for someone else
    strangers = _tracks([[(0, round(0.5 + i / 1000, 3), 0.5)] for i in range(100)])
    mated = _tracks([[(0, 0.5995, 0.5)], [(0, 0.5985, 0.5)], [(0, 0.595, 0.5)], [(1, 0.99, 0.5)]])
    # when calibrated for FPIR 1e-2 (one stranger track may be decided)
    result = calibrate_voter(mated, [0, 0, 0, 0], strangers, 1e-2)
    # then the threshold sits just above the second-highest stranger (0.598): one false track
    chosen = result.chosen
    assert chosen is not None and result.resolved
    assert chosen.threshold == pytest.approx(0.5981)
    assert chosen.false_tracks == 1 and chosen.fpir == pytest.approx(0.01)
    assert chosen.hits == 2 and chosen.wrong == 1  # the last mated track voted for person 1


def test_equal_hit_rates_go_to_the_lower_fpir() -> None:
    # given the same strangers and one mated track above them all
    strangers = _tracks([[(0, round(0.5 + i / 1000, 3), 0.5)] for i in range(100)])
    mated = _tracks([[(0, 0.5995, 0.5)]])
    # when one false track would be allowed but buys no extra hit
    result = calibrate_voter(mated, [0], strangers, 1e-2)
    # then the stricter threshold, with no false track, is chosen
    assert result.chosen is not None and result.chosen.false_tracks == 0
    assert result.chosen.threshold == pytest.approx(0.5991)


def test_calibration_prefers_more_votes_when_strangers_only_flash_by() -> None:
    # given strangers with one stray high vote each and mated tracks with three steady ones
    strangers = _tracks([[(0, 0.9, 0.5), (-1, -INF, -INF), (-1, -INF, -INF)] for _ in range(10)])
    mated = _tracks([[(0, 0.8, 0.5)] * 3 for _ in range(4)])
    # when one vote (min_votes=1) or two are allowed, at FPIR 0.1 (one of ten stranger tracks)
    result = calibrate_voter(mated, [0] * 4, strangers, 0.1, votes=(1, 2))
    # then two votes at the mated score win: every mated track is decided and no stranger is
    assert result.chosen is not None
    assert (result.chosen.min_votes, result.chosen.threshold, result.chosen.hit_rate) == (2, 0.8, 1.0)
    assert result.chosen.false_tracks == 0


def test_unresolvable_target_demands_no_false_track() -> None:
    strangers = _tracks([[(0, 0.5 + i / 100, 0.5)] for i in range(50)])
    mated = _tracks([[(0, 0.7, 0.5)]])
    result = calibrate_voter(mated, [0], strangers, 1e-3)
    assert not result.resolved and result.allowed_false_tracks == 0 and result.resolution == pytest.approx(0.02)
    assert result.chosen is not None and result.chosen.false_tracks == 0 and result.chosen.threshold > 0.99


@pytest.mark.parametrize("target", [0.0, -0.1, 1.5])
def test_calibration_refuses_a_bad_target(target: float) -> None:
    tracks = _tracks([[(0, 0.5, 0.5)]])
    with pytest.raises(ValueError, match="target"):
        calibrate_voter(tracks, [0], tracks, target)


def test_no_stranger_tracks_gives_no_choice() -> None:
    empty = TrackSearches(np.zeros((0, 2), np.int64), np.zeros((0, 2)), np.zeros((0, 2)))
    mated = _tracks([[(0, 0.5, 0.5), (0, 0.6, 0.5)]])
    assert calibrate_voter(mated, [0], empty, 0.01).chosen is None
    point = voter_point(mated, [0], empty, 0.55, 0.0, 1)
    assert np.isnan(point.fpir) and point.hit_rate == 1.0
