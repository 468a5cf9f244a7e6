"""Plate grammar (GA 36) and normalisation: a table of every kind, valid and invalid."""

from __future__ import annotations

import pytest

from vision.plates.errors import InvalidPlateError
from vision.plates.grammar import PlateKind, is_plate, normalise, parse

VALID = [
    # (input, normalised, kind)
    ("皖A12345", "皖A12345", PlateKind.ORDINARY),  # blue small
    ("京B·8C9D7", "京B8C9D7", PlateKind.ORDINARY),
    ("粤Z 1234 5", "粤Z12345", PlateKind.ORDINARY),  # yellow large, spaces
    ("皖A\n12345", "皖A12345", PlateKind.TWO_ROW_YELLOW),
    ("皖AD11166", "皖AD11166", PlateKind.NEW_ENERGY_SMALL),  # D: pure electric small
    ("沪AF12345", "沪AF12345", PlateKind.NEW_ENERGY_SMALL),  # F: other new energy
    ("沪AA12345", "沪AA12345", PlateKind.NEW_ENERGY_SMALL),  # 2021 extension of the D family
    ("苏E12345D", "苏E12345D", PlateKind.NEW_ENERGY_LARGE),
    ("苏E12345F", "苏E12345F", PlateKind.NEW_ENERGY_LARGE),
    ("京A0006警", "京A0006警", PlateKind.POLICE),
    ("浙B1234学", "浙B1234学", PlateKind.COACH),
    ("鲁C1234挂", "鲁C1234挂", PlateKind.TRAILER),
    ("粤Z1234港", "粤Z1234港", PlateKind.HONG_KONG),
    ("粤Z1A34澳", "粤Z1A34澳", PlateKind.MACAO),
    ("使014123", "使014123", PlateKind.EMBASSY),
    ("沪A0012领", "沪A0012领", PlateKind.CONSULATE),
    ("京A1234应急", "京A1234应急", PlateKind.EMERGENCY),
    ("皖Ａ１２３４５", "皖A12345", PlateKind.ORDINARY),  # full width
    ("皖a12345", "皖A12345", PlateKind.ORDINARY),  # lower case
    ("皖A1O3I5", "皖A10315", PlateKind.ORDINARY),  # O -> 0, I -> 1 in the serial
    ("皖AD1I166", "皖AD11166", PlateKind.NEW_ENERGY_SMALL),
    ("使O14I23", "使014123", PlateKind.EMBASSY),
]

INVALID = [
    ("", "empty"),
    ("   ·  ", "empty"),
    ("皖A1234", "bad_length"),  # 6 characters
    ("皖A1234567", "bad_length"),
    ("XA12345", "bad_province"),  # X is no province
    ("皖A12$45", "bad_character"),  # a character that is on no plate
    ("皖A12#45", "bad_character"),
    ("学A12345", "bad_province"),  # 学 only ends a coach plate
    ("皖112345", "bad_format"),  # issuing letter must be a letter
    ("皖AX1234D", "bad_format"),  # 8 characters but no new-energy shape
    ("皖AD1A345", "bad_format"),  # small new energy: the last 4 must be digits
    ("苏E1234AD", "bad_format"),  # large new energy: 5 digits then D/F
    ("皖AM12345", "bad_format"),  # M is no new-energy letter
    ("京A12345警", "bad_format"),  # police: 4 serial characters
    ("沪A1234港", "bad_format"),  # Hong Kong plates are 粤Z
    ("使01412", "bad_length"),
    ("使01412A", "bad_format"),  # embassy: 6 digits
    ("京A123应急", "bad_format"),  # emergency: 4 serial characters
    ("皖\nA12345", "bad_rows"),  # the top row holds province and letter
    ("皖AD\n11166", "bad_rows"),
    ("皖A\nD11166", "bad_rows"),  # new-energy plates have one row
]


@pytest.mark.parametrize(("text", "expected", "kind"), VALID)
def test_valid_plates_parse_to_their_kind(text: str, expected: str, kind: PlateKind) -> None:
    # given a plate of each kind, when parsed, then it is normalised and classified
    info = parse(text)
    assert (info.text, info.kind) == (expected, kind)
    assert is_plate(text)


@pytest.mark.parametrize(("text", "code"), INVALID)
def test_invalid_plates_are_refused_with_a_reason(text: str, code: str) -> None:
    # given a string that can be no plate, when parsed, then InvalidPlateError names why
    with pytest.raises(InvalidPlateError) as refused:
        parse(text)
    assert refused.value.code == code
    assert str(refused.value)
    assert not is_plate(text)


@pytest.mark.parametrize(("raw", "normalised"), [
    ("皖A·12345", "皖A12345"), ("皖A•12345", "皖A12345"), (" 皖 A 1 2 3 4 5 ", "皖A12345"),
    ("皖Ａ·１２３４５", "皖A12345"), ("皖AO0I11", "皖A00111"), ("", ""),
])
def test_normalise_removes_separators_and_maps_o_and_i_in_the_serial(raw: str, normalised: str) -> None:
    assert normalise(raw) == normalised


def test_issuing_letter_o_is_kept() -> None:
    # O as an issuing letter (some police offices) is a letter position: not mapped to 0
    assert parse("粤O12345").text == "粤O12345"
