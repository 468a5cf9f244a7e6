"""``smartbranch eval plates`` scoring: the tally table-driven, and a tiny run on ../shared crops."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from edge.evaluation.eval_plates import Row, Tally, evaluate


@pytest.mark.parametrize(("truth", "read", "exact", "chars_right"), [
    ("皖A12345", "皖A12345", True, 7),
    ("皖A12345", "皖A12346", False, 6),  # one substitution
    ("皖A12345", "皖A1234", False, 6),  # one dropped: aligned, not positional
    ("皖A12345", None, False, 0),  # nothing read
    ("皖A12345", "", False, 0),
])
def test_tally(truth: str, read: str | None, exact: bool, chars_right: int) -> None:
    tally = Tally()
    tally.add(Row("crops/x.jpg", truth, "", "crop"), read, 1.0)
    summary = tally.summary()
    assert summary["crop_exact"] == (1.0 if exact else 0.0)
    assert tally.chars_right == chars_right
    assert len(summary["misses"]) == (0 if exact else 1)


def test_empty_tally() -> None:
    summary = Tally().summary()
    assert summary["crop_exact"] is None and summary["char_accuracy"] is None


@pytest.mark.shared_data
def test_evaluate_a_few_crops(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "plates"
    with (root / "labels.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "crop"][:4]
    labels = tmp_path / "labels.csv"
    with labels.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "plate", "color_if_known", "kind"])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r[k] for k in ("file", "plate", "color_if_known", "kind")})
        writer.writerow({"file": "crops/absent.jpg", "plate": "皖A12345", "color_if_known": "", "kind": "crop"})
    result = evaluate(root, labels, baseline=False)
    json.dumps(result)  # the CLI writes it as JSON
    assert result["ours"]["crops"] == 4  # the absent file is skipped
    assert result["crop_exact"] is not None and result["crop_exact"] >= 0.75
    assert result["reader_config"]["crop_pad_y"] == [0.2] or result["reader_config"]["crop_pad_y"] == (0.2,)
