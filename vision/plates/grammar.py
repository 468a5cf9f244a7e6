"""Chinese plate grammar (GA 36-2018 and its amendments) and normalisation of OCR output.

Every kind is a template: one allowed character set per position. The same templates drive
validation (:func:`parse`), the grammar-constrained CTC decoding of the reader and the matcher.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from vision.plates.errors import InvalidPlateError

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # serial letters: no I, no O
ISSUER = LETTERS + "O"  # issuing-authority letter; O is used by some police / government offices
DIGITS = "0123456789"
ALNUM = LETTERS + DIGITS
NEW_ENERGY = "DABCEFGHJK"  # D/F families: D,A,B,C,E pure electric; F,G,H,J,K other new energy
SUFFIXES = "警学挂港澳使领"
EMERGENCY = "应急"
SEPARATORS = re.compile(r"[\s·•・．.\-_]+")
PLATE_CHARS = frozenset(PROVINCES + ISSUER + DIGITS + SUFFIXES + EMERGENCY)


class PlateKind(StrEnum):
    ORDINARY = "ordinary"  # blue small / yellow large, single row
    TWO_ROW_YELLOW = "two_row_yellow"  # large vehicles' rear plate, province+letter above the serial
    NEW_ENERGY_SMALL = "new_energy_small"
    NEW_ENERGY_LARGE = "new_energy_large"
    POLICE = "police"  # 警
    COACH = "coach"  # 学
    TRAILER = "trailer"  # 挂
    HONG_KONG = "hong_kong"  # 粤Z····港
    MACAO = "macao"  # 粤Z····澳
    EMBASSY = "embassy"  # 使
    CONSULATE = "consulate"  # 领
    EMERGENCY = "emergency"  # 应急


# The plate colour each kind is issued in (ordinary: blue for small vehicles, yellow for large ones).
KIND_COLOURS: dict[PlateKind, tuple[str, ...]] = {
    PlateKind.ORDINARY: ("blue", "yellow"),
    PlateKind.TWO_ROW_YELLOW: ("yellow",),
    PlateKind.NEW_ENERGY_SMALL: ("green",),
    PlateKind.NEW_ENERGY_LARGE: ("green",),
    PlateKind.POLICE: ("white",),
    PlateKind.COACH: ("yellow",),
    PlateKind.TRAILER: ("yellow",),
    PlateKind.HONG_KONG: ("black",),
    PlateKind.MACAO: ("black",),
    PlateKind.EMBASSY: ("black",),
    PlateKind.CONSULATE: ("black",),
    PlateKind.EMERGENCY: ("white",),
}


@dataclass(frozen=True, slots=True)
class Template:
    """One plate kind as a sequence of allowed-character sets (one per character)."""

    kind: PlateKind
    positions: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.positions)

    def matches(self, text: str) -> bool:
        return len(text) == len(self.positions) and all(c in p for c, p in zip(text, self.positions, strict=True))


def _t(kind: PlateKind, *positions: str) -> Template:
    return Template(kind, positions)


TEMPLATES: tuple[Template, ...] = (
    _t(PlateKind.ORDINARY, PROVINCES, ISSUER, ALNUM, ALNUM, ALNUM, ALNUM, ALNUM),
    _t(PlateKind.NEW_ENERGY_SMALL, PROVINCES, ISSUER, NEW_ENERGY, ALNUM, DIGITS, DIGITS, DIGITS, DIGITS),
    _t(PlateKind.NEW_ENERGY_LARGE, PROVINCES, ISSUER, DIGITS, DIGITS, DIGITS, DIGITS, DIGITS, NEW_ENERGY),
    _t(PlateKind.POLICE, PROVINCES, ISSUER, ALNUM, ALNUM, ALNUM, ALNUM, "警"),
    _t(PlateKind.COACH, PROVINCES, ISSUER, ALNUM, ALNUM, ALNUM, ALNUM, "学"),
    _t(PlateKind.TRAILER, PROVINCES, ISSUER, ALNUM, ALNUM, ALNUM, ALNUM, "挂"),
    _t(PlateKind.HONG_KONG, "粤", "Z", ALNUM, ALNUM, ALNUM, ALNUM, "港"),
    _t(PlateKind.MACAO, "粤", "Z", ALNUM, ALNUM, ALNUM, ALNUM, "澳"),
    _t(PlateKind.EMBASSY, "使", DIGITS, DIGITS, DIGITS, DIGITS, DIGITS, DIGITS),
    _t(PlateKind.CONSULATE, PROVINCES, ISSUER, ALNUM, ALNUM, ALNUM, ALNUM, "领"),
    _t(PlateKind.EMERGENCY, PROVINCES, ISSUER, ALNUM, ALNUM, ALNUM, ALNUM, "应", "急"),
)


@dataclass(frozen=True, slots=True)
class PlateInfo:
    """A valid plate: its normalised text, kind and the colours that kind is issued in."""

    text: str
    kind: PlateKind
    colours: tuple[str, ...]


def _half_width(text: str) -> str:
    # NFKC maps full-width Latin letters and digits (Ａ１) to ASCII and keeps CJK characters as they are.
    return unicodedata.normalize("NFKC", text)


def normalise(text: str) -> str:
    """Remove separators and spaces, fold full width to half width and upper case, and map O to 0 and
    I to 1 wherever the grammar admits no letter O or I (every serial position)."""
    flat = SEPARATORS.sub("", _half_width(text)).upper()
    if not flat:
        return flat
    serial_from = 1 if flat[0] == "使" else 2
    head, tail = flat[:serial_from], flat[serial_from:]
    return head + tail.replace("O", "0").replace("I", "1")


def _two_row_split(text: str) -> bool:
    """Whether ``text`` has a line break right after the province and issuing letter."""
    lines = [SEPARATORS.sub("", _half_width(line)) for line in text.splitlines()]
    lines = [line for line in lines if line]
    return len(lines) == 2 and len(lines[0]) == 2


def parse(text: str) -> PlateInfo:
    """Normalise ``text`` and classify it; raise :class:`InvalidPlateError` when it can be no plate.

    A two-line input (``"皖A\\n12345"``) is a two-row yellow plate when its first row holds the
    province and the issuing letter and its second row the serial."""
    raw = text
    lines = [line for line in text.splitlines() if line.strip()]
    two_row = len(lines) > 1
    if two_row and not _two_row_split(text):
        raise InvalidPlateError("bad_rows", "a two-row plate has the province and issuing letter on the top row "
                                            "and the serial on the bottom row", raw)
    flat = normalise(text)
    if not flat:
        raise InvalidPlateError("empty", "the plate is empty", raw)
    foreign = sorted({c for c in flat if c not in PLATE_CHARS})
    if foreign:
        raise InvalidPlateError("bad_character", f"characters that appear on no plate: {''.join(foreign)}", raw)
    if len(flat) < 7 or len(flat) > 8:
        raise InvalidPlateError("bad_length", f"a plate has 7 or 8 characters, got {len(flat)}", raw)
    for template in TEMPLATES:
        if template.matches(flat):
            kind = template.kind
            if two_row:
                if kind not in (PlateKind.ORDINARY, PlateKind.TRAILER):
                    raise InvalidPlateError("bad_rows", f"{kind.value} plates have one row", raw)
                if kind is PlateKind.ORDINARY:
                    kind = PlateKind.TWO_ROW_YELLOW
            return PlateInfo(flat, kind, KIND_COLOURS[kind])
    raise InvalidPlateError(_reason_code(flat), _reason(flat), raw)


def _reason_code(flat: str) -> str:
    if flat[0] not in PROVINCES and flat[0] != "使":
        return "bad_province"
    return "bad_format"


def _reason(flat: str) -> str:
    if flat[0] not in PROVINCES and flat[0] != "使":
        return f"{flat[0]!r} is not a province abbreviation"
    if flat[0] != "使" and flat[1] not in ISSUER:
        return f"{flat[1]!r} is not an issuing-authority letter"
    if len(flat) == 8 and flat[-2:] != EMERGENCY:
        return ("an 8-character plate must be new-energy: D/F-family letter then 1 character and 4 digits "
                "(small), or 5 digits then a D/F-family letter (large)")
    return "the characters do not follow any plate format (GA 36)"


def is_plate(text: str) -> bool:
    try:
        parse(text)
    except InvalidPlateError:
        return False
    return True


def templates_of_length(n: int) -> tuple[Template, ...]:
    return tuple(t for t in TEMPLATES if len(t) == n)
