"""The terminal tables of ``smartbranch eval faces`` (CJK-aware column widths)."""

from __future__ import annotations

import math
import unicodedata

from edge.evaluation.face_protocol import SetReport
from edge.i18n import t


def text_width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def fmt_value(value: float, digits: int = 3) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}"


def _row(name: str, r: SetReport) -> list[str]:
    tar3 = next(op for op in r.tar if op.target == 1e-3)
    f2, f3 = (next(op for op in r.fnir if op.target == x) for x in (1e-2, 1e-3))
    acc = "-" if not math.isfinite(r.accuracy) else f"{r.accuracy:.3f}±{r.accuracy_std:.3f}"
    return [name, str(r.n_pairs), acc, fmt_value(r.accuracy_faces_found), fmt_value(tar3.rate), fmt_value(f2.rate),
            fmt_value(f3.rate), f"{r.no_face}/{r.n_images}"]


def print_summary(lang: str, overall: SetReport, groups: dict[str, SetReport], mixed: int) -> None:
    rows = [t("ev_columns", lang).split("|"), _row("all", overall)]
    rows += [_row(name, rep) for name, rep in groups.items()]
    widths = [max(text_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [cell + " " * (w - text_width(cell)) if i == 0 else " " * (w - text_width(cell)) + cell
                 for i, (cell, w) in enumerate(zip(r, widths, strict=True))]
        print("  ".join(cells))
    for name, rep in [("all", overall), *groups.items()]:
        tar3 = next(op for op in rep.tar if op.target == 1e-3)
        f2, f3 = (next(op for op in rep.fnir if op.target == x) for x in (1e-2, 1e-3))
        print(t("ev_thresholds", lang, name=name, acc=fmt_value(rep.threshold, 4), tar=fmt_value(tar3.threshold, 4),
                f2=fmt_value(f2.threshold, 4), f3=fmt_value(f3.threshold, 4)))
    if mixed:
        print(t("ev_mixed", lang, count=mixed))
    print(t("ev_unresolved", lang))
