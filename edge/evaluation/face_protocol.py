"""The evaluation protocols on embedded face sets: pair verification (k-fold accuracy, ROC, TAR@FAR)
and open-set identification (NIST FRVT 1:N style FNIR@FPIR), for one set or one group of it.

Open set: identities with at least two photos are split into two halves with a fixed seed. Each
enrolled identity's gallery template is its first photo (in manifest order); its other photos are
mated searches. Every photo of a not-enrolled identity is a non-mated search, including identities
with one photo when identities come from labels (a manifest or folders), but not when they are
inferred from genuine pairs (a lone photo there may be an enrolled person). A photo without a face
is a failure to enrol (its identity's mated searches all miss) or to acquire (a mated search
misses; a non-mated search returns nothing): nothing is dropped. The ``*_faces_found`` figures
repeat the measurement without those searches, to separate recognition from detection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.evaluation.face_data import Embeddings, PairList
from vision.evaluation import (
    OpenSetScores,
    OperatingPoint,
    best_threshold,
    det_curve,
    fnir_at_fpir,
    kfold_accuracy,
    open_set_scores,
    roc_curve,
    tar_at_far,
)

FAR_TARGETS = (1e-2, 1e-3)
FPIR_TARGETS = (1e-2, 1e-3)
MAX_CURVE_POINTS = 400


@dataclass(frozen=True, slots=True)
class OpenSetProtocol:
    gallery: tuple[str, ...]
    mated: tuple[str, ...]
    mated_truth: tuple[int, ...]
    nonmated: tuple[str, ...]
    n_enrolled: int
    n_not_enrolled: int


def build_protocol(files: Sequence[str], identity: Mapping[str, str], *, seed: int,
                   use_singletons: bool) -> OpenSetProtocol:
    by_id: dict[str, list[str]] = {}
    for f in files:
        by_id.setdefault(identity[f], []).append(f)
    multi = sorted(i for i, fs in by_id.items() if len(fs) >= 2)
    order = np.random.default_rng(seed).permutation(len(multi))
    enrolled = sorted(multi[i] for i in order[: (len(multi) + 1) // 2])
    enrolled_set = set(enrolled)
    not_enrolled = [i for i in sorted(by_id) if i not in enrolled_set and (len(by_id[i]) >= 2 or use_singletons)]
    mated: list[str] = []
    truth: list[int] = []
    for g, ident in enumerate(enrolled):
        mated.extend(by_id[ident][1:])
        truth.extend([g] * (len(by_id[ident]) - 1))
    nonmated = [f for ident in not_enrolled for f in by_id[ident]]
    return OpenSetProtocol(tuple(by_id[i][0] for i in enrolled), tuple(mated), tuple(truth), tuple(nonmated),
                           len(enrolled), len(not_enrolled))


def search_matrix(emb: Embeddings, probes: Sequence[str], gallery: Sequence[str]) -> npt.NDArray[np.float64]:
    """(P, V, G) cosine scores of each probe variant against each template; -inf where a face is missing."""
    index = emb.index()
    p = np.array([index[f] for f in probes], np.int64)
    g = np.array([index[f] for f in gallery], np.int64)
    pv = emb.vectors[p].astype(np.float64)  # (P, V, d)
    gv = emb.vectors[g, 0].astype(np.float64)  # (G, d)
    scores = pv @ gv.T if p.size and g.size else np.zeros((p.size, emb.vectors.shape[1], g.size))
    ok = emb.found[p][:, :, None] & emb.found[g, 0][None, None, :]
    out: npt.NDArray[np.float64] = np.where(ok, scores, -np.inf)
    return out


def pair_scores(emb: Embeddings, pairs: PairList) -> npt.NDArray[np.float64]:
    index = emb.index()
    a = np.array([index[f] for f in pairs.left], np.int64)
    b = np.array([index[f] for f in pairs.right], np.int64)
    if a.size == 0:
        return np.zeros(0)
    scores = np.einsum("nd,nd->n", emb.vectors[a, 0].astype(np.float64), emb.vectors[b, 0].astype(np.float64))
    out: npt.NDArray[np.float64] = np.where(emb.found[a, 0] & emb.found[b, 0], scores, -np.inf)
    return out


def _point(op: OperatingPoint) -> dict[str, float | int | bool]:
    return {"target": op.target, "rate": op.rate, "threshold": op.threshold, "achieved": op.achieved,
            "false_accepts": op.false_accepts, "n_negatives": op.n_negatives, "n_positives": op.n_positives,
            "resolution": op.resolution, "upper95": op.upper95, "resolved": op.resolved}


def _thin(*arrays: npt.NDArray[np.float64]) -> list[list[float]]:
    n = arrays[0].size
    # every point of the low false-rate end, where the operating points lie, then evenly spaced ones
    head = np.arange(min(n, MAX_CURVE_POINTS // 4))
    spread = np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(np.int64)
    keep = np.unique(np.concatenate([head, spread])) if n else np.zeros(0, np.int64)
    return [[round(float(a[i]), 6) for i in keep] for a in arrays]


@dataclass(frozen=True, slots=True)
class SetReport:
    """Every metric of one set (or one group); ``to_json`` names the keys of the report."""

    n_images: int
    no_face: int
    n_pairs: int
    n_genuine: int
    n_impostor: int
    pairs_no_face: int
    accuracy: float
    accuracy_std: float
    n_folds: int
    threshold: float
    accuracy_faces_found: float
    accuracy_faces_found_std: float
    tar: tuple[OperatingPoint, ...]
    fnir: tuple[OperatingPoint, ...]
    fnir_faces_found: tuple[OperatingPoint, ...]
    rank1_hit_rate: float
    open_set: dict[str, int]
    roc: list[list[float]] = field(default_factory=list)
    det: list[list[float]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "n_images": self.n_images, "no_face": self.no_face, "n_pairs": self.n_pairs,
            "n_genuine": self.n_genuine, "n_impostor": self.n_impostor, "pairs_no_face": self.pairs_no_face,
            "accuracy": self.accuracy, "accuracy_std": self.accuracy_std, "n_folds": self.n_folds,
            "threshold": self.threshold, "accuracy_faces_found": self.accuracy_faces_found,
            "accuracy_faces_found_std": self.accuracy_faces_found_std,
        }
        for op in self.tar:
            out[f"tar_at_far_{op.target:.0e}".replace("e-0", "e-")] = op.rate
            out[f"tar_at_far_{op.target:.0e}_threshold".replace("e-0", "e-")] = op.threshold
        for op in self.fnir:
            out[f"fnir_at_fpir_{op.target:.0e}".replace("e-0", "e-")] = op.rate
            out[f"fnir_at_fpir_{op.target:.0e}_threshold".replace("e-0", "e-")] = op.threshold
        for op in self.fnir_faces_found:
            out[f"fnir_at_fpir_{op.target:.0e}_faces_found".replace("e-0", "e-")] = op.rate
        out["rank1_hit_rate"] = self.rank1_hit_rate
        out["open_set"] = {**self.open_set, "operating_points": [_point(op) for op in self.fnir],
                           "operating_points_faces_found": [_point(op) for op in self.fnir_faces_found]}
        out["verification_operating_points"] = [_point(op) for op in self.tar]
        out["roc"] = dict(zip(("threshold", "far", "tar"), self.roc, strict=False))
        out["det"] = dict(zip(("threshold", "fpir", "fnir"), self.det, strict=False))
        return out


def evaluate_set(emb: Embeddings, pairs: PairList, open_files: Sequence[str], identity: Mapping[str, str], *,
                 seed: int, folds: int, use_singletons: bool) -> SetReport:
    """All metrics of ``pairs`` and of the open-set protocol over ``open_files``."""
    index = emb.index()
    files = sorted(set(pairs.files) | set(open_files))
    no_face = sum(1 for f in files if not emb.found[index[f], 0])
    scores = pair_scores(emb, pairs)
    labels = pairs.same.astype(np.int64)
    kfold = kfold_accuracy(scores, labels, folds=pairs.fold, k=folds, seed=seed)
    found = np.isfinite(scores)
    kfold_found = kfold_accuracy(scores[found], labels[found],
                                 folds=None if pairs.fold is None else pairs.fold[found], k=folds, seed=seed)
    threshold, _ = best_threshold(scores, labels)
    protocol = build_protocol(open_files, identity, seed=seed, use_singletons=use_singletons)
    mated = search_matrix(emb, protocol.mated, protocol.gallery)[:, 0, :]
    nonmated = search_matrix(emb, protocol.nonmated, protocol.gallery)[:, 0, :]
    truth = np.asarray(protocol.mated_truth, np.int64)
    osc = open_set_scores(mated, truth, nonmated)
    # the same searches without failures to enrol or acquire: recognition alone
    found_m = np.array([emb.found[index[f], 0] and emb.found[index[protocol.gallery[g]], 0]
                        for f, g in zip(protocol.mated, truth, strict=True)], bool)
    found_n = np.array([emb.found[index[f], 0] for f in protocol.nonmated], bool)
    osc_found = OpenSetScores(osc.mated_hit[found_m] if found_m.size else osc.mated_hit,
                              osc.nonmated_top[found_n] if found_n.size else osc.nonmated_top)
    roc = roc_curve(scores, labels)
    det = det_curve(osc)

    def missing(names: Sequence[str]) -> int:
        return sum(1 for f in names if not emb.found[index[f], 0])

    open_set = {"n_enrolled": protocol.n_enrolled, "n_not_enrolled": protocol.n_not_enrolled,
                "n_gallery_no_face": missing(protocol.gallery), "n_mated": len(protocol.mated),
                "n_mated_no_face": missing(protocol.mated), "n_nonmated": len(protocol.nonmated),
                "n_nonmated_no_face": missing(protocol.nonmated)}
    return SetReport(
        n_images=len(files), no_face=no_face, n_pairs=len(pairs), n_genuine=int(pairs.same.sum()),
        n_impostor=int((~pairs.same).sum()), pairs_no_face=int((~found).sum()),
        accuracy=kfold.mean, accuracy_std=kfold.std, n_folds=kfold.n_folds, threshold=threshold,
        accuracy_faces_found=kfold_found.mean, accuracy_faces_found_std=kfold_found.std,
        tar=tuple(tar_at_far(scores, labels, f) for f in FAR_TARGETS),
        fnir=tuple(fnir_at_fpir(osc, f) for f in FPIR_TARGETS),
        fnir_faces_found=tuple(fnir_at_fpir(osc_found, f) for f in FPIR_TARGETS),
        rank1_hit_rate=osc.rank1_hit_rate, open_set=open_set,
        roc=_thin(roc.threshold, roc.far, roc.tar), det=_thin(det.threshold, det.fpir, det.fnir))


def json_safe(value: object) -> object:
    """NaN and infinities become null (JSON has neither); containers are walked."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
