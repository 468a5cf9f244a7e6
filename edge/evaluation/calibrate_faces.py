"""``smartbranch faces calibrate``: choose ``face.voter`` (threshold, min_margin, min_votes) for a target
track-level FPIR on a labelled photo set, and write them into the config file.

    smartbranch faces calibrate --target-fpir 0.001 --root ../shared/data/faces/east_asian \\
        --manifest ../shared/data/faces/east_asian/manifest.csv --config smartbranch.yaml [--dry-run]

The model of a track (the voter decides per track, not per photo):
- The open-set split is the one of ``eval faces`` (same seed): gallery = the first photo of each
  enrolled identity, embedded as is; every other photo of an enrolled identity is a mated track;
  every photo of a not-enrolled identity is a stranger (non-mated) track.
- A track is one photo seen ``K`` times, ``K`` = ``face.voter.max_observations`` (capped at the
  number of variants below): the photo itself, then camera-like variants of it (small head roll,
  lower resolution, darker and brighter light, blur, JPEG artefacts, sensor noise, a shifted
  crop). Each variant is detected and embedded by the product pipeline; a variant without a face
  is an observation that did not happen. So the observations of a track are strongly correlated,
  as the frames of one walk-in are, and not independent draws: extra votes help only as much as
  real variation between frames allows. A real walk-in also changes pose and expression, which
  these variants do not model.
- Each observation is searched against the gallery and voted exactly as
  :class:`vision.voter.IdentityVoter` does (:mod:`vision.track_evaluation` replays it).
- Track FPIR = stranger tracks decided for any enrolled person / stranger tracks. Hit rate =
  mated tracks decided for their own person / mated tracks; FNIR = 1 - hit rate. Mated tracks
  decided for another person (misidentified) are reported too.
The setting with the highest hit rate whose track FPIR is at most the target wins. When there are
too few stranger tracks to resolve the target (target x tracks < 1), the constraint becomes "no
stranger track decided" and the output says so: it never extrapolates.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import load_config
from edge.config_edit import set_voter_values
from edge.errors import EvalDataError
from edge.evaluation.calibrate_tracks import SpaceTracks, calibrate_in, enrol_protocol, single_photo
from edge.evaluation.eval_faces import add_adapt_arguments, add_data_arguments, positive_int
from edge.evaluation.face_adapt import Choosing, adaptation_json, choose, fit, write_transform
from edge.evaluation.face_data import Embeddings, check_root, embed_images, read_manifest
from edge.evaluation.face_protocol import build_protocol, json_safe
from edge.i18n import t
from vision.engines.registry import build_engine
from vision.population import Whitening, WhiteningConfig
from vision.population_choice import AdaptationChoice, ChoiceConfig
from vision.track_evaluation import VoterPoint, voter_point
from vision.types import Image
from vision.voter import VoterConfig

DEFAULT_MARGINS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08)
DEFAULT_VOTES = (1, 2, 3)


def _rotate(image: Image, degrees: float) -> Image:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE), np.uint8)


def _rescale(image: Image, factor: float) -> Image:
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)


def _light(image: Image, alpha: float, beta: float) -> Image:
    return np.asarray(cv2.convertScaleAbs(image, alpha=alpha, beta=beta), np.uint8)


def _blur(image: Image, sigma: float) -> Image:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), np.uint8)


def _jpeg(image: Image, quality: int) -> Image:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.asarray(cv2.imdecode(buffer, cv2.IMREAD_COLOR), np.uint8) if ok else image


def _noise(image: Image, sigma: float) -> Image:
    noise = np.random.default_rng(0).normal(0.0, sigma, image.shape)
    return np.clip(image.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def _shift(image: Image, fraction: float) -> Image:
    h, w = image.shape[:2]
    matrix = np.array([[1, 0, fraction * w], [0, 1, fraction * h]], np.float32)
    return np.asarray(cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE), np.uint8)


VARIANT_NAMES = ("original", "roll +6deg", "half resolution", "darker", "blur sigma 1.5", "roll -6deg",
                 "jpeg q30", "brighter", "noise sigma 6", "0.7 resolution + blur", "shift 5%")


@dataclass(frozen=True, slots=True)
class TrackVariants:
    """The first ``count`` observations of a modelled track of one photo (picklable for workers)."""

    count: int

    def __call__(self, image: Image) -> list[Image]:
        makers = (
            lambda im: im, lambda im: _rotate(im, 6.0), lambda im: _rescale(im, 0.5), lambda im: _light(im, 0.7, -10),
            lambda im: _blur(im, 1.5), lambda im: _rotate(im, -6.0), lambda im: _jpeg(im, 30),
            lambda im: _light(im, 1.25, 20), lambda im: _noise(im, 6.0), lambda im: _blur(_rescale(im, 0.7), 1.0),
            lambda im: _shift(im, 0.05),
        )
        return [make(image) for make in makers[: self.count]]


def _fmt(value: float, digits: int = 4) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}"


def _point_values(p: VoterPoint) -> dict[str, object]:
    return {"threshold": p.threshold, "margin": p.min_margin, "votes": p.min_votes, "fpir": _fmt(p.fpir),
            "false": p.false_tracks, "n": p.n_nonmated, "upper": _fmt(p.upper95), "hit": _fmt(p.hit_rate, 3),
            "fnir": _fmt(p.fnir, 3), "wrong": p.wrong}


def tracks_needed(target: float) -> int:
    """Stranger tracks that, all rejected, bound the FPIR below ``target`` with 95 % confidence."""
    return math.ceil(math.log(0.05) / math.log1p(-target)) if target < 1 else 1


def _point_json(point: VoterPoint | None) -> dict[str, object] | None:
    return None if point is None else asdict(point)


def by_enrol_photos(emb: Embeddings, files: tuple[str, ...], identity: dict[str, str], counts: list[int],
                    transform: Whitening | None, model_id: str, args: argparse.Namespace,
                    votes: tuple[int, ...]) -> dict[str, dict[str, object]]:
    """Per count of enrolment photos: the voter calibrated for the target on those templates (its hit
    rate and FPIR), in the working space and, when adapting, in the raw space too."""
    def figures(tracks: SpaceTracks) -> dict[str, object]:
        chosen = tracks.calibration.chosen
        return {"hit_rate": chosen.hit_rate if chosen else math.nan, "fpir": chosen.fpir if chosen else math.nan,
                "chosen": _point_json(chosen), "resolved": tracks.calibration.resolved}

    out: dict[str, dict[str, object]] = {}
    for n in counts:
        protocol = enrol_protocol(files, identity, seed=args.seed, photos=n, probes_from=max(counts))
        entry: dict[str, object] = {"photos": n, "n_enrolled": protocol.n_enrolled,
                                    "n_mated_tracks": len(protocol.mated), "n_nonmated_tracks": len(protocol.nonmated)}
        entry.update(figures(calibrate_in(emb, protocol, transform, model_id, target_fpir=args.target_fpir,
                                          margins=tuple(args.margins), votes=votes)))
        if transform is not None:
            entry["unadapted"] = figures(calibrate_in(emb, protocol, None, model_id, target_fpir=args.target_fpir,
                                                      margins=tuple(args.margins), votes=votes))
        out[str(n)] = entry
    return out


def run(args: argparse.Namespace, lang: str) -> int:
    config = load_config(args.config)
    voter = config.face.voter
    k = min(args.observations or voter.max_observations, len(VARIANT_NAMES))
    manifest = read_manifest(args.manifest, args.identity_column) if args.manifest else None
    if manifest is None:
        raise EvalDataError("faces calibrate needs --manifest (file,identity CSV)")
    if args.population_out is not None and not args.adapt:
        raise EvalDataError("--population-out needs --adapt")
    counts = sorted(set(args.enrol_photos or []))
    check_root(args.root, manifest.files)
    identity = dict(zip(manifest.files, manifest.identity, strict=True))
    protocol = build_protocol(manifest.files, identity, seed=args.seed, use_singletons=True)
    if not protocol.nonmated or not protocol.mated:
        raise EvalDataError(f"{manifest.path}: needs identities with two or more photos on both sides of the split")
    if counts and not enrol_protocol(manifest.files, identity, seed=args.seed, photos=1,
                                     probes_from=counts[-1]).mated:
        raise EvalDataError(f"{manifest.path}: --enrol-photos {counts[-1]} needs identities with more than "
                            f"{counts[-1]} photos")
    engine = build_engine(config.face.engine)
    model_id = engine.model_id
    # every photo once as a track (the first observation is the photo itself, the gallery's view of it)
    emb = embed_images(args.root, manifest.files, config.face.engine, engine=engine, workers=args.workers,
                       transform=TrackVariants(k), variants=k, desc=t("cal_progress", lang), cache=args.cache)
    votes = tuple(v for v in args.votes if v <= k) or (1,)
    raw = calibrate_in(emb, single_photo(protocol), None, model_id, target_fpir=args.target_fpir,
                       margins=tuple(args.margins), votes=votes)
    result = raw.calibration
    current = voter_point(raw.mated, raw.truth, raw.nonmated, voter.threshold, voter.min_margin, voter.min_votes)
    transform, choice = _adaptation(args, emb, model_id, voter.threshold)
    adapted = None if transform is None else calibrate_in(emb, single_photo(protocol), transform, model_id,
                                                          target_fpir=args.target_fpir,
                                                          margins=tuple(args.margins), votes=votes)
    print(t("cal_header", lang, target=args.target_fpir, k=k, enrolled=protocol.n_enrolled,
            mated=raw.mated.n_tracks, nonmated=raw.nonmated.n_tracks))
    print(t("cal_current", lang, **_point_values(current)))
    report: dict[str, object] = {
        "target_fpir": args.target_fpir, "observations_per_track": k, "variants": list(VARIANT_NAMES[:k]),
        "seed": args.seed, "n_enrolled": protocol.n_enrolled, "n_mated_tracks": raw.mated.n_tracks,
        "n_nonmated_tracks": raw.nonmated.n_tracks, "resolved": result.resolved, "resolution": result.resolution,
        "allowed_false_tracks": result.allowed_false_tracks, "candidates": result.n_candidates,
        "gallery_no_face": sum(1 for g in protocol.gallery if not emb.found[emb.index()[g], 0]),
        "probe_no_face": sum(1 for f in (*protocol.mated, *protocol.nonmated) if not emb.found[emb.index()[f], 0]),
        "current": asdict(current), "chosen": _point_json(result.chosen),
    }
    if transform is not None and adapted is not None:
        report["adaptation"] = {**adaptation_json(transform, None, choice=choice), "before": _point_json(result.chosen),
                                "after": _point_json(adapted.calibration.chosen)}
    if counts:
        report["by_enrol_photos"] = by_enrol_photos(emb, manifest.files, identity, counts, transform, model_id, args,
                                                    votes)
    if args.json is not None:
        args.json.write_text(json.dumps(json_safe(report), indent=1), encoding="utf-8")
    if result.chosen is None:
        print(t("cal_none", lang), file=sys.stderr)
        return 1
    print(t("cal_chosen", lang, **_point_values(result.chosen)))
    if not result.resolved:
        print(t("cal_unresolved", lang, n=raw.nonmated.n_tracks, target=args.target_fpir,
                resolution=_fmt(result.resolution), needed=tracks_needed(args.target_fpir)))
    if transform is not None and adapted is not None:
        if choice is not None and choice.pairs is not None:
            print(t("ev_adapt_choice", lang, branch=choice.branch, rate=f"{choice.pairs.rate:.2e}",
                    cutoff=f"{choice.min_pair_rate:.0e}", threshold=f"{choice.pairs.threshold:.4f}"))
        print_adapted(lang, transform, result.chosen, adapted.calibration.chosen)
    if counts:
        print_by_photos(lang, report["by_enrol_photos"])  # type: ignore[arg-type]
    if transform is not None and args.population_out is not None:
        write_population(args.population_out, transform, adapted.calibration.chosen if adapted else None, voter)
        print(t("cal_population_written", lang, path=args.population_out))
    if args.dry_run:
        print(t("cal_dry_run", lang))
        return 0
    chosen = result.chosen
    edit = set_voter_values(args.config, {"threshold": chosen.threshold, "min_margin": chosen.min_margin,
                                          "min_votes": chosen.min_votes})
    if not edit.comments_kept:
        print(t("cal_comments_lost", lang))
    print(t("cal_written", lang, path=args.config))
    return 0


def _adaptation(args: argparse.Namespace, emb: Embeddings, model_id: str,
                threshold: float) -> tuple[Whitening | None, AdaptationChoice | None]:
    """With ``--adapt``: the box's choice at the configured voter threshold (``--always-whiten``: the fit)."""
    if not args.adapt:
        return None, None
    config = WhiteningConfig(shrinkage=args.shrinkage)
    if args.always_whiten:
        return fit(emb, model_id, config), None
    choice = choose(emb, model_id, config, Choosing(threshold, ChoiceConfig(min_pair_rate=args.min_pair_rate)))
    return choice.whitening, choice


def print_adapted(lang: str, transform: Whitening, before: VoterPoint, after: VoterPoint | None) -> None:
    if not transform.adapted:
        print(t("ev_adapt_off", lang, reason=transform.reason))
        return
    print(t("cal_adapted", lang, faces=transform.count, shrinkage=transform.shrinkage,
            hit_before=_fmt(before.hit_rate, 3), fpir_before=_fmt(before.fpir),
            hit_after=_fmt(after.hit_rate, 3) if after else "-", fpir_after=_fmt(after.fpir) if after else "-",
            threshold=after.threshold if after else "-", margin=after.min_margin if after else "-",
            votes=after.min_votes if after else "-"))


def print_by_photos(lang: str, entries: dict[str, dict[str, Any]]) -> None:
    print(t("cal_photos_columns", lang))
    for n, entry in entries.items():
        raw = entry.get("unadapted")
        extra = "" if raw is None else f"   ({_fmt(raw['hit_rate'], 3)} / {_fmt(raw['fpir'])})"
        print(f"{n:>5}  {entry['n_enrolled']:>4}  {entry['n_mated_tracks']:>5}  {entry['n_nonmated_tracks']:>5}  "
              f"{_fmt(entry['hit_rate'], 3):>6}  {_fmt(entry['fpir']):>7}{extra}")


def write_population(path: Path, transform: Whitening, chosen: VoterPoint | None, voter: Any) -> None:
    """The transform with the voter setting calibrated in its space (none when nothing met the target)."""
    setting = None if chosen is None else VoterConfig(chosen.threshold, chosen.min_margin, chosen.min_votes,
                                                      voter.max_observations)
    write_transform(path, transform.with_voter(setting))


def cmd_faces_calibrate(args: argparse.Namespace, lang: str) -> int:
    try:
        return run(args, lang)
    except EvalDataError as exc:
        print(t("ev_error", lang, message=str(exc)), file=sys.stderr)
        return 2


def _fpir(value: str) -> float:
    number = float(value)
    if not 0.0 < number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return number


def _floats(value: str) -> list[float]:
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from exc
    if not out or any(v < 0 for v in out):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {value!r}")
    return out


def _ints(value: str) -> list[int]:
    out = [int(v) for v in _floats(value)]
    if any(v < 1 for v in out):
        raise argparse.ArgumentTypeError(f"votes must be at least 1, got {value!r}")
    return out


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("faces", help="人脸识别工具 / face tools").add_subparsers(dest="faces_cmd", required=True)
    p = group.add_parser("calibrate", help="按目标 FPIR 标定投票参数 / calibrate face.voter for a target FPIR")
    p.add_argument("--target-fpir", type=_fpir, required=True, help="轨迹级误识率目标 / track-level FPIR, e.g. 0.001")
    p.add_argument("--config", type=Path, required=True, help="要写入的配置 / config file to update (face.voter)")
    add_data_arguments(p)
    p.add_argument("--dry-run", action="store_true", help="只显示，不写配置 / print only")
    p.add_argument("--json", type=Path, default=None, help="标定报告 / write the calibration report")
    p.add_argument("--observations", type=positive_int, default=None,
                   help=f"每条轨迹观测数 / observations per track (default max_observations, at most "
                        f"{len(VARIANT_NAMES)})")
    p.add_argument("--margins", type=_floats, default=list(DEFAULT_MARGINS), help="min_margin 候选 / candidates")
    p.add_argument("--votes", type=_ints, default=list(DEFAULT_VOTES), help="min_votes 候选 / candidates")
    p.add_argument("--adapt", action="store_true",
                   help="人群自适应 / also calibrate in the population-adapted space (fitted on the photos, labels "
                        "unused) and report the hit rate before and after")
    add_adapt_arguments(p)
    p.add_argument("--population-out", type=Path, default=None,
                   help="写出自适应变换 / write the fitted transform with the voter setting calibrated in its "
                        "space (needs --adapt; face.voter keeps the unadapted setting)")
    p.add_argument("--enrol-photos", type=_ints, default=None,
                   help="按登记照片数对比 / e.g. 1,3,5: hit rate and FPIR at the target for templates from that "
                        "many photos per person, side by side")
    p.set_defaults(func=cmd_faces_calibrate)
