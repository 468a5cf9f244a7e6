"""Track-level searches for ``faces calibrate``: who is enrolled with which photos, which photos are
tracks, and the gallery answers of every track's observations, in the raw or a population-adapted space.

- :func:`single_photo` is the protocol of ``eval faces`` (each enrolled identity's first photo).
- :func:`enrol_protocol` enrols each identity from its first ``photos`` photos, averaged into one
  template as enrolment does (:func:`vision.enrolment.mean_template`: the L2-normalised mean). To compare
  1, 3 and 5 photos fairly, every count enrols the same identities (those with more than the largest
  count) and searches the same tracks: their photos after the largest count, and every photo of an
  identity that is not enrolled.
- Templates are built from the raw embeddings, as the gallery stores them, and then go through the
  transform like every probe: the transform is applied to probes and gallery alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.evaluation.face_adapt import adapt
from edge.evaluation.face_data import Embeddings
from edge.evaluation.face_protocol import OpenSetProtocol
from vision.population import Whitening
from vision.track_evaluation import TrackSearches, VoterCalibration, calibrate_voter, track_searches


@dataclass(frozen=True, slots=True)
class TemplateProtocol:
    """Enrolled identities (the photos of each template), mated tracks with their template, stranger tracks."""

    gallery: tuple[tuple[str, ...], ...]
    mated: tuple[str, ...]
    mated_truth: tuple[int, ...]
    nonmated: tuple[str, ...]

    @property
    def n_enrolled(self) -> int:
        return len(self.gallery)


def single_photo(protocol: OpenSetProtocol) -> TemplateProtocol:
    return TemplateProtocol(tuple((g,) for g in protocol.gallery), protocol.mated, protocol.mated_truth,
                            protocol.nonmated)


def enrol_protocol(files: Sequence[str], identity: Mapping[str, str], *, seed: int, photos: int,
                   probes_from: int) -> TemplateProtocol:
    """Half of the identities with more than ``probes_from`` photos (seeded) are enrolled from their
    first ``photos`` photos; their photos from index ``probes_from`` on are mated tracks; every photo
    of every other identity is a stranger track."""
    if not 1 <= photos <= probes_from:
        raise ValueError(f"photos must be in [1, {probes_from}], got {photos}")
    by_id: dict[str, list[str]] = {}
    for f in files:
        by_id.setdefault(identity[f], []).append(f)
    eligible = sorted(i for i, fs in by_id.items() if len(fs) > probes_from)
    order = np.random.default_rng(seed).permutation(len(eligible))
    enrolled = sorted(eligible[i] for i in order[: (len(eligible) + 1) // 2])
    chosen = set(enrolled)
    mated: list[str] = []
    truth: list[int] = []
    for g, ident in enumerate(enrolled):
        mated.extend(by_id[ident][probes_from:])
        truth.extend([g] * (len(by_id[ident]) - probes_from))
    nonmated = [f for ident in sorted(by_id) if ident not in chosen for f in by_id[ident]]
    return TemplateProtocol(tuple(tuple(by_id[i][:photos]) for i in enrolled), tuple(mated), tuple(truth),
                            tuple(nonmated))


def templates(emb: Embeddings, gallery: Sequence[Sequence[str]], transform: Whitening | None,
              model_id: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """(G, d) templates (the normalised mean of each identity's photos with a face, then the
    transform) and whether each has any face at all (a failure to enrol otherwise)."""
    index = emb.index()
    out = np.zeros((len(gallery), emb.vectors.shape[2]))
    found = np.zeros(len(gallery), bool)
    for g, photos in enumerate(gallery):
        rows = [index[f] for f in photos if emb.found[index[f], 0]]
        if rows:
            mean = emb.vectors[rows, 0].astype(np.float64).mean(axis=0)
            out[g] = mean / np.linalg.norm(mean)
            found[g] = True
    if transform is not None and found.any():
        out[found] = transform.apply(model_id, out[found])
    return out, found


def searches(probes: Embeddings, names: Sequence[str], gallery: npt.NDArray[np.float64],
             gallery_found: npt.NDArray[np.bool_]) -> TrackSearches:
    """Gallery answers of every observation of the tracks of ``names``."""
    index = probes.index()
    rows = np.array([index[f] for f in names], np.int64)
    pv = probes.vectors[rows].astype(np.float64)  # (T, K, d)
    scores = pv @ gallery.T if rows.size and gallery.shape[0] else np.zeros((rows.size, pv.shape[1],
                                                                            gallery.shape[0]))
    ok = probes.found[rows][:, :, None] & gallery_found[None, None, :]
    return track_searches(np.where(ok, scores, -np.inf))


@dataclass(frozen=True, slots=True)
class SpaceTracks:
    """The mated and stranger tracks of one protocol in one space, and the calibration there."""

    mated: TrackSearches
    truth: npt.NDArray[np.int64]
    nonmated: TrackSearches
    calibration: VoterCalibration


def calibrate_in(emb: Embeddings, protocol: TemplateProtocol, transform: Whitening | None, model_id: str, *,
                 target_fpir: float, margins: tuple[float, ...], votes: tuple[int, ...]) -> SpaceTracks:
    """Searches of ``protocol`` through ``transform`` (None: the raw space) and the best voter setting there."""
    probes = emb if transform is None else adapt(emb, transform, model_id)
    gallery, found = templates(emb, protocol.gallery, transform, model_id)
    mated = searches(probes, protocol.mated, gallery, found)
    nonmated = searches(probes, protocol.nonmated, gallery, found)
    truth = np.asarray(protocol.mated_truth, np.int64)
    return SpaceTracks(mated, truth, nonmated,
                       calibrate_voter(mated, truth, nonmated, target_fpir, margins=margins, votes=votes))
