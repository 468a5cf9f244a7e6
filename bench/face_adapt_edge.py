"""What learning the population costs a box, and how well the guard's estimate holds on a population it can sample.

    python -m bench.face_adapt_edge --persons 200 --probes 2000 --repeats 5 --json adapt_edge.json

Synthetic 128-d unit vectors (a common offset and a few dominant directions, like face embeddings): this measures
cost and the guard's arithmetic, not recognition accuracy (that is ``python -m bench.face_population`` on real
faces). Per probe, searched one at a time as a camera does: the gallery alone, the adapter learning only (apply
off), and the adapter applied. Then one refit (choice, fit, guard, transformed templates), the camera's wait in
the search that makes a refit due (the refit itself runs on the adapter's background thread), and the size of the
saved aggregates. Last, the guard's normal-tail estimate of the stranger match rate at a threshold set at the
unadapted 99th percentile of a stranger's best score, against the rate counted on fresh strangers, before and
after adaptation.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from cryptography.fernet import Fernet

from bench.common import write_json
from edge.faces.adapt import PopulationAdapter
from edge.faces.config import AdaptationSettings
from edge.store.db import Store
from vision.gallery import Gallery
from vision.population import PopulationStats, WhiteningConfig, fit_whitening
from vision.population_guard import check_transform
from vision.types import FloatArray

DIM = 128


def population(n: int, seed: int) -> FloatArray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIM)) * np.linspace(3.0, 0.3, DIM) + 0.5
    out: FloatArray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def per_probe_us(search: object, probes: FloatArray) -> float:
    fn = search.search  # type: ignore[attr-defined]
    start = time.perf_counter()
    for row in probes:
        fn(row[None, :], 2)
    return (time.perf_counter() - start) / len(probes) * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--persons", type=int, default=200)
    p.add_argument("--probes", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    faiss.omp_set_num_threads(1)  # as the box runs it (edge.runtime)

    templates = population(args.persons, 1)
    gallery = Gallery("bench", DIM)
    for i, t in enumerate(templates):
        gallery.add(f"p{i}", t[None, :])
    probes = population(args.probes, 2)
    strangers = population(20000, 3)
    threshold = float(np.quantile((strangers[:5000] @ templates.T).max(axis=1), 0.99))
    runs: dict[str, list[float]] = {"gallery": [], "learning": [], "adapted": [], "refit_ms": [], "trigger_ms": []}
    blob_bytes = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            store = Store(Path(tmp) / f"edge-{r}.db", branch_id="bench", cipher=Fernet(Fernet.generate_key()))
            runs["gallery"].append(per_probe_us(gallery, probes))
            off = PopulationAdapter(AdaptationSettings(min_faces=10**6), gallery=gallery, store=store,
                                    threshold=threshold)
            runs["learning"].append(per_probe_us(off, probes))
            off.close()
            on = PopulationAdapter(AdaptationSettings(apply=True, min_faces=256, max_fpir_ratio=100.0,
                                                      refit_interval_s=2592000, min_pair_rate=1e-300),
                                   gallery=gallery, store=store, threshold=threshold)
            seen = population(1000, 4 + r)
            on.search(seen[:255])
            start = time.perf_counter()
            on.search(seen[255:256])  # the 256th face makes the first refit due: the camera only asks for it
            runs["trigger_ms"].append((time.perf_counter() - start) * 1e3)
            on.wait_refits()
            on.search(seen[256:])
            start = time.perf_counter()
            on.refit()
            runs["refit_ms"].append((time.perf_counter() - start) * 1e3)
            runs["adapted"].append(per_probe_us(on, probes))
            on.close()
            blob_bytes = len(store.cipher.encrypt(PopulationStats.of("bench", population(1000, 4)).to_bytes()))
    stats = PopulationStats.of("bench", population(5000, 5))
    whitening = fit_whitening(stats, WhiteningConfig())
    verdict = check_transform(stats, whitening, templates, [f"p{i}" for i in range(len(templates))], threshold)
    fresh = strangers[5000:]
    counted_before = float(((fresh @ templates.T).max(axis=1) >= threshold).mean())
    adapted = whitening.apply("bench", fresh) @ whitening.apply("bench", templates).T
    counted_after = float((verdict.score_map.offset + verdict.score_map.scale * adapted.max(axis=1)
                           >= threshold).mean())
    medians = {k: statistics.median(v) for k, v in runs.items()}
    print(f"{args.persons} persons, {args.probes} probes one at a time, median of {args.repeats} runs")
    print(f"{'search':<28}{'us/probe':>10}")
    for key, label in (("gallery", "gallery alone"), ("learning", "adapter, learning only"),
                       ("adapted", "adapter, applied")):
        print(f"{label:<28}{medians[key]:>10.1f}")
    print(f"refit (choice + fit + guard + templates, background thread): {medians['refit_ms']:.1f} ms; the search "
          f"that makes it due: {medians['trigger_ms']:.2f} ms; saved aggregates {blob_bytes} bytes")
    print(f"stranger match rate at {threshold:.4f}:  estimated before {verdict.fpir_before:.4f}, after "
          f"{verdict.fpir_after:.4f};  counted before {counted_before:.4f}, after {counted_after:.4f}; "
          f"guard {'accepts' if verdict.accepted else 'refuses: ' + str(verdict.reason)}")
    if args.json is not None:
        write_json(args.json, {"persons": args.persons, "probes": args.probes, "repeats": args.repeats,
                               "runs": runs, "median": medians, "saved_aggregate_bytes": blob_bytes,
                               "threshold": threshold, "fpir_estimated_before": verdict.fpir_before,
                               "fpir_estimated_after": verdict.fpir_after, "fpir_counted_before": counted_before,
                               "fpir_counted_after": counted_after, "guard_accepts": verdict.accepted,
                               "guard_reason": verdict.reason})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
