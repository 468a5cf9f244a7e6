"""Population adaptation on an evaluated face set: fit :mod:`vision.population` statistics on the
set's own photos without their labels, move every embedding into the adapted space, and measure
the same metrics there.

Two fits, both without labels:
- **on the whole set** (what ``eval faces --adapt`` reports as ``accuracy``): the statistics of every
  evaluated photo, as a box would learn them from the faces it sees; the photos being scored are
  part of the population, as the faces a box recognises are part of what it learnt from.
- **fold-honest** (``adaptation.fold_honest``): for each verification fold, a transform fitted on the
  photos of the other folds' pairs only, its threshold chosen on the other folds and applied to its
  own; for open-set search, identities are cut into folds and each fold's probes and gallery
  templates are compared through a transform fitted without that fold's photos. A gain that only
  came from fitting on the scored photos disappears here.

Whether to adapt at all is the box's own label-free choice (:func:`vision.population_choice.choose_transform`, at
the voter's calibrated threshold): the whole-set fit and every fold's fit go through it, so a population like the
model's native one stays unadapted here as at the box, and the report says which branch was taken and why.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import EvalDataError
from edge.evaluation.face_data import Embeddings, PairList
from edge.evaluation.face_protocol import FAR_TARGETS, FPIR_TARGETS, build_protocol, pair_scores, search_matrix
from vision.errors import PopulationError
from vision.evaluation import (
    KFoldAccuracy,
    OperatingPoint,
    fnir_at_fpir,
    fold_ids,
    kfold_accuracy_per_fold,
    open_set_scores,
    tar_at_far,
)
from vision.population import PopulationStats, Whitening, WhiteningConfig, fit_whitening
from vision.population_choice import AdaptationChoice, ChoiceConfig, choose_transform


@dataclass(frozen=True, slots=True)
class Choosing:
    """The box's choice, made at ``threshold`` (the voter's calibrated one); None in its place fits unconditionally."""

    threshold: float
    config: ChoiceConfig


def population_of(emb: Embeddings, model_id: str, exclude: Collection[str] = ()) -> PopulationStats:
    """Statistics of the first variant of every photo with a face, except those in ``exclude``."""
    keep = [i for i, f in enumerate(emb.files) if emb.found[i, 0] and f not in exclude]
    return PopulationStats.of(model_id, emb.vectors[keep, 0].astype(np.float64).reshape(len(keep), -1))


def adapt(emb: Embeddings, transform: Whitening, model_id: str) -> Embeddings:
    """Every found embedding (all variants) moved into ``transform``'s space; missing faces stay empty."""
    vectors = np.zeros_like(emb.vectors)
    if emb.found.any():
        vectors[emb.found] = transform.apply(model_id, emb.vectors[emb.found])
    return Embeddings(emb.files, vectors, emb.found, emb.ms)


def fit(emb: Embeddings, model_id: str, config: WhiteningConfig, exclude: Collection[str] = ()) -> Whitening:
    return fit_whitening(population_of(emb, model_id, exclude), config)


def choose(emb: Embeddings, model_id: str, config: WhiteningConfig, choosing: Choosing,
           exclude: Collection[str] = ()) -> AdaptationChoice:
    """The box's choice on the statistics of these photos (labels unused): the transform or the identity, and why."""
    return choose_transform(population_of(emb, model_id, exclude), config, threshold=choosing.threshold,
                            config=choosing.config)


def _fit_or_choose(emb: Embeddings, model_id: str, config: WhiteningConfig, choosing: Choosing | None,
                   exclude: Collection[str]) -> Whitening:
    if choosing is None:
        return fit(emb, model_id, config, exclude)
    return choose(emb, model_id, config, choosing, exclude).whitening


@dataclass(frozen=True, slots=True)
class FoldHonest:
    """Metrics where no photo is scored through a transform fitted on it."""

    accuracy: KFoldAccuracy
    tar: tuple[OperatingPoint, ...]
    fnir: tuple[OperatingPoint, ...]
    n_pair_folds: int
    n_identity_folds: int
    unadapted_folds: int  # folds whose fit fell back to the identity

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"accuracy": self.accuracy.mean, "accuracy_std": self.accuracy.std}
        for op in self.tar:
            out[f"tar_at_far_{op.target:.0e}".replace("e-0", "e-")] = op.rate
        for op in self.fnir:
            out[f"fnir_at_fpir_{op.target:.0e}".replace("e-0", "e-")] = op.rate
        out.update({"n_pair_folds": self.n_pair_folds, "n_identity_folds": self.n_identity_folds,
                    "folds_unadapted": self.unadapted_folds})
        return out


def fold_honest(emb: Embeddings, pairs: PairList, open_files: Sequence[str], identity: Mapping[str, str],
                model_id: str, config: WhiteningConfig, *, seed: int, folds: int,
                use_singletons: bool, choosing: Choosing | None = None) -> FoldHonest:
    """Verification and open-set metrics with each fold adapted by a transform fitted without it (each fold's
    fit goes through the box's choice when ``choosing`` is given)."""
    unadapted = 0
    # verification: the pair folds of the k-fold accuracy
    pair_fold = pairs.fold if pairs.fold is not None else fold_ids(len(pairs), folds, seed)
    fold_list = np.unique(pair_fold)
    by_fold = np.empty((fold_list.size, len(pairs)))
    pooled = np.empty(len(pairs))
    for row, fold in enumerate(fold_list):
        test = np.flatnonzero(pair_fold == fold)
        held = {pairs.left[i] for i in test} | {pairs.right[i] for i in test}
        transform = _fit_or_choose(emb, model_id, config, choosing, held)
        unadapted += not transform.adapted
        by_fold[row] = pair_scores(adapt(emb, transform, model_id), pairs)
        pooled[test] = by_fold[row, test]
    labels = pairs.same.astype(np.int64)
    accuracy = kfold_accuracy_per_fold(by_fold, labels, pair_fold)
    # open set: identities cut into folds; a fold's searches go through a transform fitted without it
    protocol = build_protocol(open_files, identity, seed=seed, use_singletons=use_singletons)
    names = sorted({identity[f] for f in open_files})
    id_fold = dict(zip(names, fold_ids(len(names), folds, seed).tolist(), strict=True))
    g = len(protocol.gallery)
    mated = np.full((len(protocol.mated), g), -np.inf)
    nonmated = np.full((len(protocol.nonmated), g), -np.inf)
    for fold in sorted(set(id_fold.values())):
        held = {f for f in emb.files if f in identity and id_fold.get(identity[f]) == fold}
        transform = _fit_or_choose(emb, model_id, config, choosing, held)
        unadapted += not transform.adapted
        moved = adapt(emb, transform, model_id)
        for probes, out in ((protocol.mated, mated), (protocol.nonmated, nonmated)):
            rows = [i for i, f in enumerate(probes) if id_fold[identity[f]] == fold]
            if rows:
                out[rows] = search_matrix(moved, [probes[i] for i in rows], protocol.gallery)[:, 0, :]
    scores = open_set_scores(mated, np.asarray(protocol.mated_truth, np.int64), nonmated)
    return FoldHonest(accuracy, tuple(tar_at_far(pooled, labels, f) for f in FAR_TARGETS),
                      tuple(fnir_at_fpir(scores, f) for f in FPIR_TARGETS), int(fold_list.size),
                      len(set(id_fold.values())), unadapted)


def adaptation_json(transform: Whitening, honest: FoldHonest | None, source: Path | None = None,
                    choice: AdaptationChoice | None = None) -> dict[str, object]:
    """What the report says about the population transform (fitted here, or read from ``source``), and the box's
    choice when one was made (``branch``: unadapted, centre or whiten, with the ``reason`` and its estimate)."""
    fitted_on = ("every evaluated photo with a face (first variant), labels unused" if source is None
                 else f"given: {source}")
    return {"adapted": transform.adapted, "reason": transform.reason, "model_id": transform.model_id,
            "version": transform.version, "digest": transform.digest, "n_faces": transform.count,
            "shrinkage": transform.shrinkage, "fitted_on": fitted_on,
            "choice": choice.to_json() if choice is not None else None,
            "fold_honest": honest.to_json() if honest is not None else None}


def read_transform(path: Path, model_id: str) -> Whitening:
    """A transform written by ``--population-out``; it must be of ``model_id``."""
    try:
        return Whitening.from_bytes(path.read_bytes(), model_id=model_id)
    except OSError as exc:
        raise EvalDataError(f"{path}: cannot read the population transform: {exc}") from exc
    except PopulationError as exc:
        raise EvalDataError(f"{path}: {exc}") from exc


def write_transform(path: Path, transform: Whitening) -> None:
    """Write ``transform`` atomically (a temporary file, then a rename)."""
    part = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(transform.to_bytes())
        os.replace(part, path)
    except OSError as exc:
        raise EvalDataError(f"{path}: cannot write the population transform: {exc}") from exc
