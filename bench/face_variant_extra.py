"""Metric-side variants of ``bench.face_variants``: quality-gated probes and several enrolment photos.

Quality gate: a photo is flagged when no face was found or its quality score
(:func:`vision.quality.assess` on the default finder's face) is below the gate. Verification keeps
the pairs with both photos unflagged; the open-set protocol runs on the unflagged photos only.
``coverage`` is the share of pairs kept.

Enrolment photos: identities with at least ``K_MAX + 1`` photos are split in half (seeded, as
``eval faces`` does). An enrolled identity's gallery holds its first k photos (k = 1..K_MAX), as a
mean template (renormalised mean of the embeddings) or as k templates whose best score counts (max);
its mated searches are its photos from the (K_MAX + 1)-th on, the same for every k. Every photo of a
not-enrolled identity is a non-mated search.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from edge.evaluation.eval_faces import EvalInput, evaluate
from edge.evaluation.face_data import Embeddings
from edge.evaluation.face_protocol import SetReport
from vision.evaluation import fnir_at_fpir, open_set_scores

logger = logging.getLogger(__name__)

K_MAX = 3


def _op(report: SetReport, kind: str, target: float) -> float:
    ops = report.tar if kind == "tar" else report.fnir
    return next(op.rate for op in ops if op.target == target)


def summary(name: str, overall: SetReport, groups: dict[str, SetReport], ms: float, note: str) -> dict[str, object]:
    return {"variant": name, "accuracy": overall.accuracy, "accuracy_std": overall.accuracy_std,
            "groups": {g: r.accuracy for g, r in groups.items()}, "tar_at_far_1e-3": _op(overall, "tar", 1e-3),
            "fnir_at_fpir_1e-2": _op(overall, "fnir", 1e-2), "fnir_at_fpir_1e-3": _op(overall, "fnir", 1e-3),
            "threshold": overall.threshold, "no_face": overall.no_face, "n_images": overall.n_images,
            "n_pairs": overall.n_pairs, "ms_per_image": ms, "note": note}


def gated_rows(data: EvalInput, emb: Embeddings, quality: Sequence[Mapping[str, float | str]], name: str,
               gates: Sequence[float], *, seed: int, folds: int) -> list[dict[str, object]]:
    index = emb.index()
    rows: list[dict[str, object]] = []
    for gate in gates:
        ok = {f for f in emb.files
              if emb.found[index[f], 0] and float(quality[index[f]].get("score", -1.0)) >= gate}
        keep = np.array([i for i, (a, b) in enumerate(zip(data.pairs.left, data.pairs.right, strict=True))
                         if a in ok and b in ok], np.int64)
        gated = EvalInput(data.root, data.pairs.subset(keep), data.manifest, data.identity, data.identity_source,
                          tuple(f for f in data.open_files if f in ok))
        overall, groups, _ = evaluate(gated, emb, seed=seed, folds=folds)
        row = summary(f"{name} | quality>={gate:.2f}", overall, groups, float(np.median(emb.ms)),
                      "flagged probes dropped")
        row["coverage"] = keep.size / max(len(data.pairs), 1)
        row["images_kept"] = len(ok) / max(len(emb.files), 1)
        rows.append(row)
    return rows


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def enrolment_rows(data: EvalInput, emb: Embeddings, *, seed: int) -> list[dict[str, object]]:
    index = emb.index()
    by_id: dict[str, list[str]] = {}
    for f in data.open_files:
        by_id.setdefault(data.identity[f], []).append(f)
    eligible = sorted(i for i, fs in by_id.items() if len(fs) >= K_MAX + 1)
    order = np.random.default_rng(seed).permutation(len(eligible))
    enrolled = sorted(eligible[i] for i in order[: (len(eligible) + 1) // 2])
    singles_ok = data.identity_source in ("manifest", "folder")
    strangers = [f for i in sorted(by_id) if i not in set(enrolled) and (len(by_id[i]) >= 2 or singles_ok)
                 for f in by_id[i]]
    mated = [(f, g) for g, ident in enumerate(enrolled) for f in by_id[ident][K_MAX:]]

    def vec(f: str) -> npt.NDArray[np.float64] | None:
        i = index[f]
        return emb.vectors[i, 0].astype(np.float64) if emb.found[i, 0] else None

    def probe_matrix(files: Sequence[str], templates: list[list[npt.NDArray[np.float64]]]) -> npt.NDArray[np.float64]:
        out = np.full((len(files), len(templates)), -np.inf)
        for p, f in enumerate(files):
            v = vec(f)
            if v is None:
                continue
            for g, temps in enumerate(templates):
                if temps:
                    out[p, g] = max(float(t @ v) for t in temps)
        return out

    rows: list[dict[str, object]] = []
    for k in range(1, K_MAX + 1):
        for mode in ("mean", "max") if k > 1 else ("single",):
            templates: list[list[npt.NDArray[np.float64]]] = []
            for ident in enrolled:
                found = [v for v in (vec(f) for f in by_id[ident][:k]) if v is not None]
                templates.append(found if mode != "mean" or not found else [_unit(np.mean(found, axis=0))])
            m = probe_matrix([f for f, _ in mated], templates)
            n = probe_matrix(strangers, templates)
            osc = open_set_scores(m, np.array([g for _, g in mated], np.int64), n)
            f2, f3 = fnir_at_fpir(osc, 1e-2), fnir_at_fpir(osc, 1e-3)
            rows.append({"gallery": f"{k} photo" if k == 1 else f"{k} {mode}", "k": k, "mode": mode,
                         "n_enrolled": len(enrolled), "n_mated": len(mated), "n_nonmated": len(strangers),
                         "rank1": osc.rank1_hit_rate, "fnir_at_fpir_1e-2": f2.rate, "fnir_at_fpir_1e-3": f3.rate,
                         "threshold_1e-3": f3.threshold if math.isfinite(f3.threshold) else None})
    return rows
