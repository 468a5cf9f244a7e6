"""``smartbranch eval plates``: raw RapidOCR and our plate reader side by side on a labelled folder.

labels.csv columns (as ``../shared/data/plates``): ``file, plate, color_if_known, kind (scene|crop)``,
others ignored. Scenes: RapidOCR's full-frame OCR (its first plate-like line) against our reader on
the whole image. Crops: RapidOCR recognition only against our grammar-constrained recognition.
"""

from __future__ import annotations

import csv
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vision.errors import BadImageError
from vision.imageio import decode_image
from vision.plates.grammar import is_plate, normalise
from vision.plates.ocr import PpOcr
from vision.plates.reader import PlateReader, ReaderConfig
from vision.types import Image

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Row:
    file: str
    plate: str
    colour: str
    kind: str


@dataclass(slots=True)
class Tally:
    exact: dict[str, list[bool]] = field(default_factory=lambda: {"scene": [], "crop": []})
    ms: dict[str, list[float]] = field(default_factory=lambda: {"scene": [], "crop": []})
    chars_right: int = 0
    chars_total: int = 0
    colour_exact: dict[str, list[bool]] = field(default_factory=dict)
    colour_pred: dict[str, list[bool]] = field(default_factory=dict)
    confusions: Counter[str] = field(default_factory=Counter)
    misses: list[dict[str, str]] = field(default_factory=list)

    def add(self, row: Row, got: str | None, ms: float, colour: str | None = None) -> None:
        text = got or ""
        ok = text == row.plate
        self.exact[row.kind].append(ok)
        self.ms[row.kind].append(ms)
        self.chars_total += len(row.plate)
        self.chars_right += sum(a == b for a, b in zip(row.plate, text, strict=False)) if len(text) == len(
            row.plate) else _aligned_right(row.plate, text)
        if len(text) == len(row.plate):
            for a, b in zip(row.plate, text, strict=True):
                if a != b:
                    self.confusions[f"{a}->{b}"] += 1
        key = row.colour or "unknown"
        self.colour_exact.setdefault(key, []).append(ok)
        if row.colour and colour is not None:
            self.colour_pred.setdefault(row.colour, []).append(colour == row.colour)
        if not ok:
            self.misses.append({"file": row.file, "truth": row.plate, "read": text})

    def summary(self) -> dict[str, Any]:
        def rate(v: list[bool]) -> float | None:
            return round(sum(v) / len(v), 4) if v else None

        def mean(v: list[float]) -> float | None:
            return round(sum(v) / len(v), 1) if v else None

        return {
            "scene_exact": rate(self.exact["scene"]), "scenes": len(self.exact["scene"]),
            "crop_exact": rate(self.exact["crop"]), "crops": len(self.exact["crop"]),
            "char_accuracy": round(self.chars_right / self.chars_total, 4) if self.chars_total else None,
            "ms_per_scene": mean(self.ms["scene"]), "ms_per_crop": mean(self.ms["crop"]),
            "exact_by_colour": {k: rate(v) for k, v in sorted(self.colour_exact.items())},
            "colour_accuracy": {k: rate(v) for k, v in sorted(self.colour_pred.items())},
            "confusions": dict(self.confusions.most_common(30)),
            "misses": self.misses[:50],
        }


def _aligned_right(truth: str, read: str) -> int:
    """Characters of ``truth`` matched in order by ``read`` (longest common subsequence)."""
    prev = [0] * (len(read) + 1)
    for a in truth:
        cur = [0]
        for j, b in enumerate(read):
            cur.append(prev[j] + 1 if a == b else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def load_rows(labels: Path) -> list[Row]:
    with labels.open(encoding="utf-8", newline="") as fh:
        return [Row(r["file"], normalise(r["plate"]), (r.get("color_if_known") or "").strip(), r["kind"].strip())
                for r in csv.DictReader(fh) if r.get("kind", "").strip() in ("scene", "crop")]


def _rapidocr_baseline() -> Callable[[Image, str], str | None]:
    from rapidocr_onnxruntime import RapidOCR  # the raw package, for the baseline only

    engine = RapidOCR()

    def read(image: Image, kind: str) -> str | None:
        if kind == "crop":
            result, _ = engine(image, use_det=False, use_cls=False, use_rec=True)
            texts = [normalise(str(r[0])) for r in result or []]
            return texts[0] if texts else None
        result, _ = engine(image)
        lines = [normalise(str(r[1])) for r in result or []]
        return next((t for t in lines if is_plate(t)), None)
    return read


def evaluate(root: Path, labels: Path, *, baseline: bool = True, config: ReaderConfig | None = None,
             limit: int | None = None, models_dir: Path | None = None) -> dict[str, Any]:
    rows = load_rows(labels)[:limit] if limit else load_rows(labels)
    config = config or ReaderConfig(fallback_max_side=960)
    reader = PlateReader(PpOcr.from_pack(models_dir), config)
    raw = _rapidocr_baseline() if baseline else None
    ours, theirs = Tally(), Tally()
    for row in rows:
        try:
            image = decode_image((root / row.file).read_bytes())
        except (OSError, BadImageError) as exc:
            logger.warning("cannot read %s (%s); skipped", root / row.file, exc)
            continue
        t0 = time.perf_counter()
        if row.kind == "crop":
            read = reader.read_crops([image])[0]
        else:
            found = reader.read(image)
            read = found[0] if found else None
        ours.add(row, read.text if read else None, (time.perf_counter() - t0) * 1000, read.color if read else None)
        if raw is not None:
            t0 = time.perf_counter()
            text = raw(image, row.kind)
            theirs.add(row, text, (time.perf_counter() - t0) * 1000)
    out: dict[str, Any] = {"root": str(root), "labels": str(labels), "ours": ours.summary(),
                           "reader_config": asdict(config)}
    if raw is not None:
        out["rapidocr_raw"] = theirs.summary()
    out.update({k: out["ours"][k] for k in ("scene_exact", "crop_exact", "char_accuracy", "ms_per_scene",
                                            "ms_per_crop")})
    return out
