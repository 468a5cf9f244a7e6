"""The box learns its branch's face population, and compares faces in the fitted space only when that is safe.

- Learning: every live face the entrance and lobby cameras embed is added to running sums (count, sum, sum of
  outer products), folded into :class:`vision.population.PopulationStats` (count, mean, scatter) at each refit and
  save; the vector itself is dropped at once. The aggregates are
  saved encrypted (:mod:`edge.store.population`) at each refit and at shutdown, and read back at start.
- Fitting: once ``min_faces`` faces were seen, and every ``refit_interval_s`` after that, the transform is
  chosen and fitted again (:func:`vision.population_choice.choose_transform`: unadapted when the population's
  strangers sit as far below the calibrated threshold as the model's native population, else the shrunk
  whitening). The refit runs on a background thread of its own: a camera thread only adds its faces to the
  running sums and asks for a refit when one is due, it never waits for one.
- Guard: a fit is used only when :func:`vision.population_guard.check_transform` accepts it against the
  current templates at the voter's calibrated threshold; otherwise the box stays unadapted and says why.
- Consistency: probes and templates always go through the same transform. The transform, the gallery revision it
  was checked against, the templates transformed by it and the score map are one immutable view, replaced by one
  reference write; an edit of the gallery (enrolment, sync, erasure) makes the view stale, and the next search
  builds a new one from the gallery's entries before it searches (while another thread swaps a view in, that
  search compares unadapted, probe and gallery alike, rather than wait).

- Region prior (``region_prior``): while the box has seen fewer than ``min_faces`` faces of its own, each refit
  asks the console for its region's merged aggregates (the other branches', same face model) and fits on them
  merged with its own (Chan's update), so a new branch adapts from day one; ``/healthz`` says ``region+own``. Only
  the box's own aggregates are ever saved or sent up (a ``population`` outbox event at each save, its body a stub
  the sender fills from the encrypted store), so nothing is counted twice.

A fresh box without a region prior starts neutral (unadapted): nothing it has not seen yet can say which way its
population leans.
Thread-safe: camera threads call :meth:`PopulationAdapter.search` concurrently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from edge.faces.config import AdaptationSettings
from edge.store.db import Store
from edge.store.population import load_population, save_population
from vision.errors import PopulationFileError, PopulationInputError, PopulationModelError
from vision.gallery import Gallery
from vision.population import PopulationStats, Whitening, WhiteningConfig
from vision.population_choice import AdaptationChoice, ChoiceConfig, choose_transform
from vision.population_guard import GuardConfig, GuardVerdict, ScoreMap, check_transform
from vision.types import FloatArray, GalleryHit, SearchResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AdaptationState:
    """What ``/healthz`` reports: whether the box learns, whether the transform is in use, and why not."""

    learning: bool
    applied: bool
    faces_seen: int
    version: int  # of the fitted transform; 0 while none was fitted
    digest: str | None  # of the transform in use; None while unadapted
    reason: str | None  # why the box is unadapted; None while adapted
    fitted_at: datetime | None
    fpir_before: float | None  # the guard's estimates at the calibrated threshold
    fpir_after: float | None
    branch: str = "unadapted"  # what the choice made of the last fit: unadapted, centre or whiten
    stranger_pair_rate: float | None = None  # the choice's estimate at the calibrated threshold
    source: str = "own"  # whose faces the statistics hold: own, or region+own (the region prior merged in)
    region_faces: int = 0  # faces of the region prior merged in (0 with source own)


@dataclass(frozen=True, slots=True)
class _View:
    """A gallery revision and how it is searched: unadapted (``adapted`` None) or through one transform."""

    revision: int
    whitening: Whitening
    verdict: GuardVerdict
    adapted: Gallery | None
    score_map: ScoreMap


class PopulationAdapter:
    """Searches ``gallery`` for live faces, learning from them and adapting when the guard allows."""

    def __init__(self, settings: AdaptationSettings, *, gallery: Gallery, store: Store, threshold: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._gallery = gallery
        self._store = store
        self._threshold = threshold
        self._clock = clock
        self.model_id, self.dim = gallery.model_id, gallery.dim
        self._whitening_config = WhiteningConfig(shrinkage=settings.shrinkage, min_faces=settings.min_faces)
        self._guard = GuardConfig(max_fpir_ratio=settings.max_fpir_ratio)
        self._choice_config = ChoiceConfig(min_pair_rate=settings.min_pair_rate)
        self._stats_lock = threading.Lock()
        self._fit_lock = threading.Lock()  # swaps of the view
        self._refit_lock = threading.Lock()  # one refit at a time
        self._wake = threading.Condition()  # the background refit: requested, running, closing
        self._pending = self._busy = self._closing = False
        self._worker: threading.Thread | None = None
        self._choice: AdaptationChoice | None = None
        self._prior_source: Callable[[], PopulationStats | None] | None = None
        self._prior: PopulationStats | None = None  # the region's merged aggregates (never the box's own)
        self._fit_region = 0  # the region's faces in the statistics of the fit in use
        self._stats = self._load()  # the aggregates up to the last fold, and the sums of the faces since then:
        self._new_n = 0
        self._new_sum = np.zeros(self.dim)
        self._new_outer = np.zeros((self.dim, self.dim))
        self._fitted_t: float | None = None
        self._fitted_at: datetime | None = None
        self._version = 0
        self._whitening = Whitening.identity(self.model_id, self.dim, self._not_fitted_reason(self._stats.count))
        self._view = self._build_view(self._whitening)
        if self._stats.count >= settings.min_faces:
            self.refit()

    # ---------------------------------------------------------------------------------------- searching

    def search(self, vectors: FloatArray, k: int = 5) -> list[SearchResult]:
        """The gallery's hits for live faces (unadapted vectors); scores are on the calibrated scale."""
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if self._settings.learn and arr.ndim == 2 and arr.shape[0]:
            self._observe(arr)
        view = self._current_view()
        if view.adapted is None:
            return self._gallery.search(arr, k)
        results = view.adapted.search(view.whitening.apply(self.model_id, arr), k)
        mapping = view.score_map
        return [SearchResult(tuple(GalleryHit(h.person_id, mapping(h.score)) for h in r.hits)) for r in results]

    def _current_view(self) -> _View:
        view = self._view
        if view.revision == self._gallery.revision:
            return view
        if not self._fit_lock.acquire(blocking=False):  # a view is being swapped in: compare unadapted meanwhile
            return _View(self._gallery.revision, view.whitening, view.verdict, None, ScoreMap())
        try:  # the gallery was edited: check and transform its templates again
            if self._view.revision != self._gallery.revision:
                self._view = self._build_view(self._whitening)
            return self._view
        finally:
            self._fit_lock.release()

    def _build_view(self, whitening: Whitening) -> _View:
        revision, owners, templates = self._gallery.entries()
        if not whitening.adapted:
            return _View(revision, whitening, GuardVerdict(False, whitening.reason, ScoreMap()), None, ScoreMap())
        stats = self._with_prior(self._folded())
        verdict = check_transform(stats, whitening, templates, owners, self._threshold, self._guard)
        if not self._settings.apply:
            verdict = GuardVerdict(False, "face.adaptation.apply is off (learning only)", ScoreMap(),
                                   verdict.fpir_before, verdict.fpir_after)
        if not verdict.accepted:
            return _View(revision, whitening, verdict, None, ScoreMap())
        adapted = Gallery(self.model_id, self.dim)
        for person in dict.fromkeys(owners):
            rows = templates[[i for i, owner in enumerate(owners) if owner == person]]
            adapted.add(person, whitening.apply(self.model_id, rows))
        return _View(revision, whitening, verdict, adapted, verdict.score_map)

    # ----------------------------------------------------------------------------------------- learning

    def _observe(self, arr: FloatArray) -> None:
        batch = np.asarray(arr, np.float64)
        if not np.isfinite(batch).all():
            return  # a broken embedding teaches nothing (the search refuses it too)
        with self._stats_lock:  # running sums: a few microseconds a face, and no vector is kept
            self._new_n += batch.shape[0]
            self._new_sum += batch.sum(axis=0)
            self._new_outer += batch.T @ batch
            count = self._stats.count + self._new_n
        if count + self._prior_count(count) < self._settings.min_faces:
            return
        now = self._clock()
        if self._fitted_t is None or now - self._fitted_t >= self._settings.refit_interval_s:
            self._request_refit()

    def _request_refit(self) -> None:
        """Ask the background thread for a refit (started on the first request); never waits for it."""
        with self._wake:
            if self._pending or self._busy or self._closing:
                return
            self._pending = True
            if self._worker is None:
                self._worker = threading.Thread(target=self._refit_loop, name="face-population-refit", daemon=True)
                self._worker.start()
            self._wake.notify_all()

    def _refit_loop(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending or self._closing)
                if self._closing:
                    return
                self._pending, self._busy = False, True
            try:
                self.refit()
            except Exception:  # a failed refit leaves the box as it was; the next due one tries again
                logger.exception("face population refit failed")
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def wait_refits(self, timeout: float | None = None) -> bool:
        """Wait until no background refit is asked for or running; False when ``timeout`` ran out first."""
        with self._wake:
            return self._wake.wait_for(lambda: not (self._pending or self._busy), timeout)

    def refit(self) -> AdaptationState:
        """Choose and fit the transform on what was seen so far, save the aggregates, and swap in the checked view.

        The fit and the check run outside the view's lock; only the swap takes it, so searches never wait."""
        with self._refit_lock:
            own = self._folded()
            self._refresh_prior(own)
            stats = self._with_prior(own)
            self._fitted_t = self._clock()
            choice = choose_transform(stats, self._whitening_config, threshold=self._threshold,
                                      config=self._choice_config, version=self._version + 1)
            fitted = choice.whitening
            if fitted.adapted:
                self._version = fitted.version
                self._fitted_at = datetime.now(UTC)
            view = self._build_view(fitted)
            with self._fit_lock:
                self._choice, self._whitening, self._view = choice, fitted, view
                self._fit_region = stats.count - own.count
            self._save(own)
        state = self.state()
        logger.info("face population refitted on %s faces: %s", state.faces_seen,
                    f"adapted (transform {state.digest})" if state.applied else f"unadapted: {state.reason}")
        return state

    def close(self) -> None:
        """Stop the background refit (a running one finishes) and save the aggregates (at shutdown)."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join()
        self._save(self._folded())

    def _folded(self) -> PopulationStats:
        """The aggregates with the faces seen since the last fold merged in (Chan's update)."""
        with self._stats_lock:
            if self._new_n:
                mean = self._new_sum / self._new_n
                m2 = self._new_outer - self._new_n * np.outer(mean, mean)
                recent = PopulationStats(self.model_id, self._new_n, mean, (m2 + m2.T) / 2)
                self._stats = self._stats.merge(recent)
                self._new_n = 0
                self._new_sum = np.zeros(self.dim)
                self._new_outer = np.zeros((self.dim, self.dim))
            return self._stats

    def _save(self, stats: PopulationStats) -> None:
        """Save the box's own aggregates and owe the console a ``population`` event (a stub: the sender reads
        the aggregates from the encrypted store when it sends)."""
        try:
            if save_population(self._store, stats):
                with self._store.session() as s, s.begin():
                    self._store.stage_event(s, kind="population", at=datetime.now(UTC), body={
                        "model_id": self.model_id, "count": stats.count, "version": self._version})
        except SQLAlchemyError as exc:  # a busy or full disk costs the box some learning, never its cameras
            logger.warning("face population not saved (%s faces): %s", stats.count, exc)

    # ------------------------------------------------------------------------------------ region prior

    def attach_region_prior(self, fetch: Callable[[], PopulationStats | None]) -> None:
        """Where the region's merged aggregates come from (the console); with ``region_prior`` on and fewer than
        ``min_faces`` faces of its own, a refit is asked for at once (on the background thread: it fetches)."""
        self._prior_source = fetch
        with self._stats_lock:
            own = self._stats.count + self._new_n
        if self._settings.region_prior and own < self._settings.min_faces:
            self._request_refit()

    def _prior_wanted(self, own: int) -> bool:
        return self._settings.region_prior and self._prior_source is not None and own < self._settings.min_faces

    def _prior_count(self, own: int) -> int:
        prior = self._prior
        return prior.count if prior is not None and self._prior_wanted(own) else 0

    def _refresh_prior(self, own: PopulationStats) -> None:
        """Fetch the region's aggregates while they are wanted (a failed fetch keeps the last ones)."""
        if not self._prior_wanted(own.count) or self._prior_source is None:
            self._prior = None
            return
        fetched = self._prior_source()
        if fetched is None:
            return
        if fetched.model_id != self.model_id or fetched.dim != self.dim:
            logger.warning("the region's face population is of %s (%s-d), not %s: not used", fetched.model_id,
                           fetched.dim, self.model_id)
            return
        self._prior = fetched

    def _with_prior(self, own: PopulationStats) -> PopulationStats:
        prior = self._prior
        if prior is None or not self._prior_wanted(own.count):
            return own
        try:
            return own.merge(prior)
        except (PopulationInputError, PopulationModelError) as exc:
            logger.warning("the region's face population does not merge with the box's own: %s", exc)
            return own

    def _load(self) -> PopulationStats:
        try:
            stats = load_population(self._store, self.model_id)
        except PopulationFileError as exc:
            logger.error("the stored face population is unreadable, learning afresh: %s", exc)
            stats = None
        if stats is None or stats.dim != self.dim:
            return PopulationStats.empty(self.model_id, self.dim)
        logger.info("face population of %s loaded: %s faces", self.model_id, stats.count)
        return stats

    def _not_fitted_reason(self, count: int) -> str:
        return f"too few faces: {count} < {self._settings.min_faces}"

    # ------------------------------------------------------------------------------------------- status

    def state(self) -> AdaptationState:
        view = self._view
        with self._stats_lock:
            count = self._stats.count + self._new_n
        region = self._fit_region
        applied = view.adapted is not None
        reason = None if applied else view.verdict.reason
        if not applied and not view.whitening.adapted and count + region < self._settings.min_faces:
            reason = self._not_fitted_reason(count + self._prior_count(count))
        choice = self._choice
        return AdaptationState(learning=self._settings.learn, applied=applied, faces_seen=count,
                               version=self._version, digest=view.whitening.digest if applied else None,
                               reason=reason, fitted_at=self._fitted_at, fpir_before=view.verdict.fpir_before,
                               fpir_after=view.verdict.fpir_after,
                               branch=choice.branch if choice is not None else "unadapted",
                               stranger_pair_rate=choice.pairs.rate if choice and choice.pairs else None,
                               source="region+own" if region else "own", region_faces=region)
