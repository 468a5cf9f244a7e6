"""Free text that people type and other people read: names, tiers and notes shown on a screen.

The rule: what is stored and sent is what a reader sees. Text is NFKC-normalised (full-width Latin
and compatibility forms become their plain letters), and every character that changes how text
*looks* without being seen itself is removed: Unicode format characters (category Cf: bidi
embeddings, overrides and isolates such as U+202E, zero-width spaces and joiners, the BOM, soft
hyphens), control characters, surrogates, private-use and unassigned code points. Runs of
whitespace, line and paragraph separators included, become one space, and the ends are trimmed.
More than :data:`MAX_COMBINING_MARKS` combining marks on one letter are dropped (stacked marks
spill over neighbouring lines). A name that becomes empty is the caller's to refuse.

It lives here, beside the envelope, because these strings cross the network to the terminals and
both the edge and the console write them; nothing here depends on either.
"""

from __future__ import annotations

import math
import unicodedata

MAX_COMBINING_MARKS = 3  # per base letter; real scripts need at most two or three after NFKC
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_SPACES = frozenset({"Zs", "Zl", "Zp"})
_WHITESPACE_CONTROLS = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85")


def display_text(value: str, *, compatibility: bool = True) -> str:
    """``value`` as it will be shown: see the module docstring.

    ``compatibility=False`` skips NFKC (it uses NFC) for records whose exact characters matter, such
    as a consent statement with full-width punctuation; the invisible characters go all the same.
    """
    text = unicodedata.normalize("NFKC" if compatibility else "NFC", value)
    out: list[str] = []
    marks = 0
    pending_space = False
    for ch in text:
        category = unicodedata.category(ch)
        if category in _SPACES or ch in _WHITESPACE_CONTROLS:
            pending_space = bool(out)
            continue
        if category in _INVISIBLE:
            continue
        if category.startswith("M"):
            marks += 1
            if marks > MAX_COMBINING_MARKS or not out or pending_space:  # stacked, or on nothing
                continue
        else:
            marks = 0
        if pending_space:
            out.append(" ")
            pending_space = False
        out.append(ch)
    return unicodedata.normalize("NFKC" if compatibility else "NFC", "".join(out))


def whole_seconds(seconds: float) -> int:
    """The one rounding rule for a duration shown to people (tablet, printer, review page, console): the
    nearest whole second, halves up (4.78 s is 5 s, 4.5 s is 5 s, 4.49 s is 4 s). Python's ``round`` and
    ``format(.0f)`` round halves to even, so they are not used for this."""
    return max(0, math.floor(seconds + 0.5))
