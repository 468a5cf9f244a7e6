"""Free text shown on screens keeps no invisible characters: bidi overrides, zero-width, controls."""

from __future__ import annotations

import unicodedata

import pytest

from alerts.text import MAX_COMBINING_MARKS, display_text


@pytest.mark.parametrize(("raw", "shown"), [
    ("", ""),
    ("张三", "张三"),
    ("  张  三 ", "张 三"),
    ("\u202eABC\u202c", "ABC"),  # right-to-left override ... pop: shows "CBA" unless removed
    ("\u2067王五\u2069", "王五"),  # right-to-left isolate
    ("A\u200bB\u200cC\u200dD\u2060E\ufeffF", "ABCDEF"),  # zero-width space, non-joiner, joiner, word joiner, BOM
    ("Ali\u00adce", "Alice"),  # soft hyphen
    ("a\u200eb\u200fc\u061cd", "abcd"),  # LRM, RLM, Arabic letter mark
    ("tab\tnew\nline\r\x0b\x0cend", "tab new line end"),
    ("bell\x07null\x00del\x7f", "bellnulldel"),
    ("ｖｉｐ　ＶＩＰ", "vip VIP"),  # full-width Latin and the ideographic space (NFKC)
    ("line\u2028para\u2029end", "line para end"),
    ("priv\ue000ate", "private"),  # private use
    ("\u200b\u202e\u2066 \t", ""),  # nothing visible: empty
    ("\u0301leading mark", "leading mark"),
    ("Zoe\u0308", unicodedata.normalize("NFC", "Zoë")),  # one combining mark composes
])
def test_invisible_characters_are_removed_and_whitespace_collapsed(raw: str, shown: str) -> None:
    assert display_text(raw) == shown


def test_stacked_combining_marks_are_cut() -> None:
    # given a letter with twenty combining marks (text that spills over the lines around it)
    raw = "x" + "\u0301\u0300\u0302\u0303" * 5
    # when shown, then at most MAX_COMBINING_MARKS stay on it
    shown = display_text(raw)
    assert shown.startswith("x") and len(shown) - 1 <= MAX_COMBINING_MARKS


def test_without_compatibility_full_width_punctuation_stays_but_invisibles_go() -> None:
    raw = "2026-11-28 柜面书面同意，经办人\u202e 李四"
    assert display_text(raw, compatibility=False) == "2026-11-28 柜面书面同意，经办人 李四"
    assert display_text(raw) == "2026-11-28 柜面书面同意,经办人 李四"


def test_the_result_is_stable() -> None:
    for raw in ("\u202eA\u0301\u200d\u0301B", "ﬁ\u00a0x", "Ⅻ"):
        once = display_text(raw)
        assert display_text(once) == once
        assert all(unicodedata.category(c) not in ("Cf", "Cc") for c in once)
