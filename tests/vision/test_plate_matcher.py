"""PlateMatcher (confusion-aware distance, ambiguity) and per-track character voting."""

from __future__ import annotations

import pytest

from vision.plates.matcher import MatcherConfig, PlateMatcher, plate_distance
from vision.plates.voting import CharRead, PlateVoter, VoterConfig, vote

REGISTERED = {"皖A12345": "alice", "沪B8C9D7": "bob"}


@pytest.mark.parametrize(("read", "person", "distance"), [
    ("皖A12345", "alice", 0.0),  # exact
    ("皖A·12345", "alice", 0.0),  # separator
    ("皖AZ2345", None, 1.0),  # 1 -> Z is no OCR confusion: too far
    ("皖A1Z345", "alice", 0.5),  # 2 -> Z is
    ("皖A12S45", None, 1.0),  # 3 -> S is no confusion (5/S is)
    ("皖A1234S", "alice", 0.5),  # 5 -> S
    ("沪B8C907", "bob", 0.5),  # D -> 0
    ("沪BBC9D7", "bob", 0.5),  # 8 -> B
    ("苏A12345", None, None),  # the province never substitutes
    ("皖A1Z34S", None, 1.0),  # two confusable substitutions exceed the default
    ("", None, None),
])
def test_match_table(read: str, person: str | None, distance: float | None) -> None:
    got = PlateMatcher(REGISTERED).match(read)
    assert got.person_id == person
    if distance is not None:
        assert got.distance == pytest.approx(distance)
    assert not got.ambiguous


def test_two_vips_one_confusable_apart_are_never_confused() -> None:
    # given two VIPs whose plates differ by 0 vs D
    matcher = PlateMatcher({"皖A1230D": "p1", "皖A12300": "p2"})
    # when the read is halfway (Q: confusable with both), then it is ambiguous: no person
    halfway = matcher.match("皖A1230Q")
    assert halfway.person_id is None and halfway.ambiguous
    # and an exact read of either picks that one only
    assert matcher.match("皖A1230D").person_id == "p1"
    assert matcher.match("皖A12300").person_id == "p2"


def test_two_vips_one_plain_substitution_apart() -> None:
    matcher = PlateMatcher({"皖A12345": "p1", "皖A12346": "p2"})
    assert matcher.match("皖A12345").person_id == "p1"
    assert matcher.match("皖A12347").person_id is None  # 1 from both, over the limit anyway


def test_empty_registry_matches_nothing() -> None:
    assert PlateMatcher({}).match("皖A12345").person_id is None


def test_distance_is_symmetric_and_province_can_be_allowed() -> None:
    assert plate_distance("皖A12345", "皖A1Z345") == plate_distance("皖A1Z345", "皖A12345") == 0.5
    assert plate_distance("苏A12345", "皖A12345") > 1
    assert plate_distance("苏A12345", "皖A12345", MatcherConfig(allow_province_substitution=True)) == 1.0
    assert plate_distance("皖A1234", "皖A12345") == 1.0  # a deletion


def _read(text: str, score: float = 0.9) -> CharRead:
    return CharRead(text, (score,) * len(text))


def test_vote_combines_reads_character_by_character() -> None:
    # given three reads each wrong in a different place, when voted, then every position is right
    result = vote([_read("皖A1Z345"), _read("皖A12S45", 0.8), _read("皖A12345", 0.7), _read("皖A1234S", 0.6)])
    assert result is not None and result.text == "皖A12345" and result.reads == 4


@pytest.mark.parametrize("reads", [[], [_read("")], [_read("not a plate")]])
def test_vote_without_valid_reads_is_none(reads: list[CharRead]) -> None:
    assert vote(reads) is None


def test_voter_decides_once_when_confident_and_at_track_end_otherwise() -> None:
    voter = PlateVoter(VoterConfig(min_reads=2, decide_weight=2.5))
    assert voter.observe(1, _read("皖A12345", 0.95)) is None
    assert voter.observe(1, _read("皖A12345", 0.95)) is None  # 1.9 < 2.5
    decided = voter.observe(1, _read("皖A12345", 0.95))
    assert decided is not None and decided.text == "皖A12345"
    assert voter.observe(1, _read("皖A12345", 0.95)) is None  # decided once
    assert voter.end(1) is None
    # a short track is decided when it ends, if it has min_reads
    voter.observe(2, _read("沪B8C9D7", 0.6))
    voter.observe(2, _read("沪B8C9D7", 0.6))
    ended = voter.end(2)
    assert ended is not None and ended.text == "沪B8C9D7"
    voter.observe(3, _read("沪B8C9D7", 0.9))
    assert voter.end(3) is None  # one read is not enough
