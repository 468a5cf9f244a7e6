"""``smartbranch eval faces``: verification and open-set identification metrics of the face pipeline
on a labelled photo set, overall and per group.

    smartbranch eval faces --root ../shared/data/faces --pairs ../shared/data/faces/pairs.csv --json lfw.json
    smartbranch eval faces --root ../shared/data/faces/east_asian --pairs …/east_asian/pairs.csv \\
        --manifest …/east_asian/manifest.csv --by source --json ea.json --plot ea.png

Every photo is embedded once with the configured engine (enrolment padding, largest face); the
protocols are in :mod:`edge.evaluation.face_protocol`, the metrics in :mod:`vision.evaluation`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from pydantic import BaseModel, TypeAdapter, ValidationError

from edge.config import load_config
from edge.errors import EvalDataError
from edge.evaluation.eval_plot import Curve, write_plot
from edge.evaluation.eval_print import fmt_value, print_summary, text_width
from edge.evaluation.face_adapt import (
    Choosing,
    FoldHonest,
    adapt,
    adaptation_json,
    choose,
    fit,
    fold_honest,
    read_transform,
    write_transform,
)
from edge.evaluation.face_data import (
    Embeddings,
    Manifest,
    PairList,
    check_root,
    embed_images,
    infer_identities,
    read_manifest,
    read_pairs,
)
from edge.evaluation.face_protocol import SetReport, evaluate_set, json_safe
from edge.faces.config import AdaptationSettings, FaceConfig, VoterSettings
from edge.i18n import t
from vision.engines.base import FaceEngine
from vision.engines.registry import ENGINE_REGISTRY, build_engine
from vision.population import Whitening, WhiteningConfig
from vision.population_choice import AdaptationChoice, ChoiceConfig
from vision.single_face import DEFAULT_STRATEGY, STRATEGIES

logger = logging.getLogger(__name__)


def choosing_of(args: argparse.Namespace) -> Choosing | None:
    """The box's choice as ``--adapt`` makes it: at the voter threshold of ``--config`` (or the default one), with
    ``--min-pair-rate``; None with ``--always-whiten``."""
    if args.always_whiten:
        return None
    threshold = load_config(args.config).face.voter.threshold if args.config is not None else VoterSettings().threshold
    return Choosing(threshold, ChoiceConfig(min_pair_rate=args.min_pair_rate))


def engine_config(engine_type: str | None, config_path: Path | None) -> BaseModel:
    """The engine settings of ``config_path`` (face.engine), or the defaults of ``engine_type``."""
    if config_path is not None:
        configured = load_config(config_path).face.engine
        if engine_type is not None and configured.type != engine_type:
            raise EvalDataError(f"{config_path}: face.engine.type is {configured.type}, not --engine {engine_type}")
        return configured
    engines: TypeAdapter[Any] = TypeAdapter(cast(Any, FaceConfig.model_fields["engine"].annotation))
    try:
        config: BaseModel = engines.validate_python({"type": engine_type or "dlib"})
    except ValidationError as exc:
        missing = sorted({str(e["loc"][-1]) for e in exc.errors() if e["type"] == "missing"})
        raise EvalDataError(f"engine {engine_type!r} has settings without a default ({', '.join(missing)}); "
                            "give them under face.engine in a --config file") from exc
    return config


@dataclass(frozen=True, slots=True)
class EvalInput:
    root: Path
    pairs: PairList
    manifest: Manifest | None
    identity: dict[str, str]
    identity_source: str
    open_files: tuple[str, ...]


def load_inputs(root: Path, pairs_path: Path, manifest_path: Path | None, identity_column: str, by: str | None,
                limit: int | None, seed: int) -> EvalInput:
    pairs = read_pairs(pairs_path)
    if limit is not None and limit < len(pairs):
        chosen = np.sort(np.random.default_rng(seed).choice(len(pairs), size=max(limit, 0), replace=False))
        pairs = pairs.subset(chosen.astype(np.int64))
    manifest = read_manifest(manifest_path, identity_column, by) if manifest_path is not None else None
    if manifest is not None:
        listed = set(manifest.files)
        if by is not None:
            stray = [f for f in pairs.files if f not in listed]
            if stray:
                raise EvalDataError(f"{pairs_path}: {stray[0]} is not in {manifest.path} (needed for --by {by})")
        identity = dict(zip(manifest.files, manifest.identity, strict=True))
        source = "manifest"
        in_pairs = set(pairs.files)
        open_files = tuple(f for f in manifest.files if limit is None or f in in_pairs)
    else:
        identity, source = infer_identities(pairs)
        open_files = tuple(pairs.files)
    check_root(root, sorted(set(pairs.files) | set(open_files)))
    return EvalInput(root, pairs, manifest, identity, source, open_files)


def _groups(data: EvalInput) -> dict[str, str]:
    if data.manifest is None or data.manifest.group is None:
        return {}
    return dict(zip(data.manifest.files, data.manifest.group, strict=True))


def evaluate(data: EvalInput, emb: Embeddings, *, seed: int, folds: int) -> tuple[SetReport, dict[str, SetReport], int]:
    """The overall report, one per group, and the number of pairs whose images lie in two groups."""
    singletons = data.identity_source in ("manifest", "folder")
    overall = evaluate_set(emb, data.pairs, data.open_files, data.identity, seed=seed, folds=folds,
                           use_singletons=singletons)
    group_of = _groups(data)
    reports: dict[str, SetReport] = {}
    mixed = 0
    if group_of:
        left = [group_of[f] for f in data.pairs.left]
        right = [group_of[f] for f in data.pairs.right]
        mixed = sum(1 for a, b in zip(left, right, strict=True) if a != b)
        for name in sorted(set(group_of[f] for f in data.open_files) | set(left)):
            index = np.array([i for i, (a, b) in enumerate(zip(left, right, strict=True)) if a == b == name], np.int64)
            files = [f for f in data.open_files if group_of[f] == name]
            reports[name] = evaluate_set(emb, data.pairs.subset(index), files, data.identity, seed=seed,
                                         folds=folds, use_singletons=singletons)
    return overall, reports, mixed


def _curve(name: str, r: SetReport) -> Curve:
    return Curve(name, r.roc[1] if r.roc else [], r.roc[2] if r.roc else [], r.det[1] if r.det else [],
                 r.det[2] if r.det else [])


@dataclass(frozen=True, slots=True)
class Adapted:
    """The same evaluation in the population-adapted space, and the fold-honest check."""

    transform: Whitening
    overall: SetReport
    groups: dict[str, SetReport]
    honest: FoldHonest | None  # None for a given transform (fitted elsewhere: nothing to hold out)
    source: Path | None
    choice: AdaptationChoice | None = None  # the box's choice on these photos; None when given or forced
    whitened: Adapted | None = None  # with a choice: the same with the transform used regardless, to compare


def evaluate_adapted(data: EvalInput, emb: Embeddings, model_id: str, config: WhiteningConfig, *, seed: int,
                     folds: int, given: Whitening | None = None, source: Path | None = None,
                     choosing: Choosing | None = None) -> Adapted:
    """Make the box's choice on every evaluated photo (labels unused; with ``choosing`` None, fit unconditionally),
    or take the ``given`` transform (read from ``source``), and evaluate again through it."""
    choice = choose(emb, model_id, config, choosing) if given is None and choosing is not None else None
    transform = given if given is not None else choice.whitening if choice is not None else fit(emb, model_id, config)
    overall, groups, _ = evaluate(data, adapt(emb, transform, model_id), seed=seed, folds=folds)
    honest = None if given is not None else fold_honest(
        emb, data.pairs, data.open_files, data.identity, model_id, config, seed=seed, folds=folds,
        use_singletons=data.identity_source in ("manifest", "folder"), choosing=choosing)
    whitened = None if choice is None else evaluate_adapted(data, emb, model_id, config, seed=seed, folds=folds)
    return Adapted(transform, overall, groups, honest, source, choice, whitened)


def _whitened_json(adapted: Adapted) -> dict[str, object]:
    """Headline figures of the transform used regardless of the choice (``adaptation.whitened``)."""
    figures = adapted.overall.to_json()
    return {**{key: figures[key] for key in HEADLINE_KEYS}, "digest": adapted.transform.digest,
            "fold_honest": adapted.honest.to_json() if adapted.honest is not None else None}


HEADLINE_KEYS = ("accuracy", "accuracy_std", "accuracy_faces_found", "tar_at_far_1e-2", "tar_at_far_1e-3",
                 "fnir_at_fpir_1e-2", "fnir_at_fpir_1e-3", "rank1_hit_rate")


def _unadapted(report: SetReport) -> dict[str, object]:
    figures = report.to_json()
    return {f"{key}_unadapted": figures[key] for key in HEADLINE_KEYS}


def print_adaptation(lang: str, unadapted: SetReport, groups: dict[str, SetReport], adapted: Adapted) -> None:
    transform = adapted.transform
    choice = adapted.choice
    if choice is not None:
        rate = choice.pairs.rate if choice.pairs is not None else math.nan
        print(t("ev_adapt_choice", lang, branch=choice.branch, rate=f"{rate:.2e}", cutoff=f"{choice.min_pair_rate:.0e}",
                threshold=f"{choice.pairs.threshold:.4f}" if choice.pairs is not None else "-"))
    if not transform.adapted:
        print(t("ev_adapt_off", lang, reason=transform.reason))
        if choice is None or choice.pairs is None:
            return
    else:
        print(t("ev_adapt_header" if adapted.source is None else "ev_adapt_given", lang, faces=transform.count,
                shrinkage=transform.shrinkage, digest=transform.digest, path=adapted.source))
    rows = [t("ev_adapt_columns", lang).split("|")]
    for name, before, after in [("all", unadapted, adapted.overall),
                                *((n, groups[n], adapted.groups[n]) for n in groups)]:
        pairs = ((before.accuracy, after.accuracy), (before.tar[0].rate, after.tar[0].rate),
                 (before.fnir[0].rate, after.fnir[0].rate))
        rows.append([name, *(f"{fmt_value(a)} → {fmt_value(b)}" for a, b in pairs)])
    widths = [max(text_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c + " " * (w - text_width(c)) for c, w in zip(r, widths, strict=True)))
    honest = adapted.honest
    if honest is None:
        return
    print(t("ev_adapt_honest", lang, acc=fmt_value(honest.accuracy.mean), std=fmt_value(honest.accuracy.std),
            tar=fmt_value(honest.tar[0].rate), fnir=fmt_value(honest.fnir[0].rate), folds=honest.n_pair_folds - 1))
    forced = adapted.whitened
    if forced is not None and forced.honest is not None:
        print(t("ev_adapt_whitened", lang, acc=fmt_value(forced.overall.accuracy),
                tar=fmt_value(forced.overall.tar[0].rate),
                fnir=fmt_value(forced.overall.fnir[0].rate), honest_acc=fmt_value(forced.honest.accuracy.mean),
                honest_fnir=fmt_value(forced.honest.fnir[0].rate)))


def run(args: argparse.Namespace, lang: str) -> int:
    if args.by is not None and args.manifest is None:
        raise EvalDataError("--by needs --manifest (the CSV that holds that column)")
    if (args.population is not None or args.population_out is not None) and not args.adapt:
        raise EvalDataError("--population and --population-out need --adapt")
    config = engine_config(args.engine, args.config)
    data = load_inputs(args.root, args.pairs, args.manifest, args.identity_column, args.by, args.limit, args.seed)
    engine: FaceEngine = build_engine(config)
    given = read_transform(args.population, engine.model_id) if args.population is not None else None
    files = sorted(set(data.pairs.files) | set(data.open_files))
    emb = embed_images(data.root, files, config, engine=engine, workers=args.workers, desc=t("ev_progress", lang),
                       strategy=args.detector, cache=args.cache)
    overall, groups, mixed = evaluate(data, emb, seed=args.seed, folds=args.folds)
    adapted = None if not args.adapt else evaluate_adapted(
        data, emb, engine.model_id, WhiteningConfig(shrinkage=args.shrinkage), seed=args.seed, folds=args.folds,
        given=given, source=args.population, choosing=choosing_of(args))
    ms = float(np.median(emb.ms)) if emb.ms.size else math.nan
    no_face_files = [f for f, ok in zip(emb.files, emb.found[:, 0], strict=True) if not ok]
    headline = overall if adapted is None else adapted.overall
    report: dict[str, object] = {
        "engine": {"type": getattr(config, "type", "?"), "model_id": engine.model_id,
                   "settings": config.model_dump(mode="json")}, "detector": args.detector,
        "root": str(data.root), "pairs": str(data.pairs.path),
        "manifest": str(data.manifest.path) if data.manifest else None, "by": args.by,
        "identity_source": data.identity_source, "seed": args.seed, "limit": args.limit,
        "ms_per_image": ms, **headline.to_json(), "no_face_files": no_face_files,
    }
    if adapted is not None:
        report.update(_unadapted(overall))
        report["adaptation"] = adaptation_json(adapted.transform, adapted.honest, adapted.source, adapted.choice)
        if adapted.whitened is not None:
            report["adaptation"]["whitened"] = _whitened_json(adapted.whitened)  # type: ignore[index]
        report["unadapted"] = overall.to_json()
    if args.by:
        shown = groups if adapted is None else adapted.groups
        report["groups"] = {name: {**rep.to_json(), **(_unadapted(groups[name]) if adapted else {})}
                            for name, rep in shown.items()}
        report["n_pairs_mixed"] = mixed
    try:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(report), indent=1, ensure_ascii=False), encoding="utf-8")
    except OSError as exc:
        raise EvalDataError(f"{args.json}: cannot write the report: {exc}") from exc
    print(t("ev_header", lang, engine=getattr(config, "type", "?"), model_id=engine.model_id, images=len(files),
            no_face=len(no_face_files), ms=ms))
    print(t("ev_identities", lang, source=data.identity_source, seed=args.seed))
    print_summary(lang, overall, groups, mixed)
    if adapted is not None:
        print_adaptation(lang, overall, groups, adapted)
    if args.plot is not None:
        curves = [_curve("all", overall), *(_curve(n, r) for n, r in groups.items())]
        if adapted is not None and adapted.transform.adapted:
            curves.insert(1, _curve("all, adapted", adapted.overall))
        write_plot(args.plot, curves, f"{data.pairs.path.parent.name}/{data.pairs.path.name}  engine {engine.model_id}")
        print(t("ev_written", lang, path=args.plot))
    if adapted is not None and args.population_out is not None:
        write_transform(args.population_out, adapted.transform)
        print(t("ev_written", lang, path=args.population_out))
    print(t("ev_written", lang, path=args.json))
    return 0


def cmd_eval_faces(args: argparse.Namespace, lang: str) -> int:
    try:
        return run(args, lang)
    except EvalDataError as exc:
        print(t("ev_error", lang, message=str(exc)), file=sys.stderr)
        return 2


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("eval", help="评测 / evaluation").add_subparsers(dest="eval_cmd", required=True)
    p = group.add_parser("faces", help="人脸识别评测 / face recognition metrics on a labelled photo set")
    add_data_arguments(p)
    p.add_argument("--pairs", type=Path, required=True, help="left,right,same[,fold] CSV, paths under --root")
    p.add_argument("--json", type=Path, required=True, help="结果 JSON / report file")
    p.add_argument("--engine", choices=sorted(ENGINE_REGISTRY), default=None, help="人脸引擎 / face engine (dlib)")
    p.add_argument("--config", type=Path, default=None, help="从配置读取 face.engine / take face.engine from a config")
    p.add_argument("--by", default=None, help="按清单列分组 / repeat every metric per value of this manifest column")
    p.add_argument("--detector", choices=STRATEGIES, default=DEFAULT_STRATEGY,
                   help=f"人脸查找策略 / how each photo's face is found ({DEFAULT_STRATEGY})")
    p.add_argument("--plot", type=Path, default=None, help="ROC/DET 图 / ROC and DET plot (PNG)")
    p.add_argument("--limit", type=positive_int, default=None, help="随机抽取 N 对 / a seeded sample of N pairs")
    p.add_argument("--folds", type=positive_int, default=10, help="k 折 / folds without a fold column (10)")
    p.add_argument("--adapt", action="store_true",
                   help="人群自适应 / also fit the population transform on the evaluated photos (labels unused) "
                        "and report adapted and unadapted figures side by side")
    add_adapt_arguments(p)
    p.add_argument("--population", type=Path, default=None,
                   help="给定的自适应变换 / adapt with this transform (from --population-out) instead of fitting one")
    p.add_argument("--population-out", type=Path, default=None,
                   help="写出自适应变换 / write the transform used (needs --adapt)")
    p.set_defaults(func=cmd_eval_faces)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by ``eval faces`` and ``faces calibrate``."""
    p.add_argument("--root", type=Path, required=True, help="图像根目录 / folder the CSV paths are relative to")
    p.add_argument("--manifest", type=Path, default=None, help="file,identity[,…] CSV")
    p.add_argument("--identity-column", default="identity", help="清单中的身份列 / identity column of the manifest")
    p.add_argument("--seed", type=int, default=0, help="随机种子 / seed of the splits and folds (0)")
    p.add_argument("--workers", type=positive_int, default=1, help="并行进程数 / embedding processes (1)")
    p.add_argument("--cache", type=Path, default=None,
                   help="特征缓存目录 / reuse embeddings from this folder (same engine, photos, settings)")


def shrinkage(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return number


def add_adapt_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shrinkage", type=shrinkage, default=WhiteningConfig().shrinkage,
                   help=f"协方差收缩比例 / share of the identity in the whitened covariance "
                        f"({WhiteningConfig().shrinkage}; 1 only centres)")
    p.add_argument("--min-pair-rate", type=pair_rate, default=AdaptationSettings().min_pair_rate,
                   help=f"自适应选择的分界 / adapt only when two strangers would match at the voter threshold at "
                        f"least this often, estimated from the statistics ({AdaptationSettings().min_pair_rate:g}, "
                        f"face.adaptation.min_pair_rate)")
    p.add_argument("--always-whiten", action="store_true",
                   help="跳过自适应选择 / fit and use the transform even where the box's choice stays unadapted "
                        "(to see what it would do)")


def pair_rate(value: str) -> float:
    number = float(value)
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {value}")
    return number

