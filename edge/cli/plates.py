"""CLI commands for plates: ``plates add|list|remove`` and ``eval plates``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.config import load_config
from edge.errors import EnrolmentError
from edge.i18n import t


def cmd_plates_add(args: argparse.Namespace, lang: str) -> int:
    from edge.parking.registry import PlateRegistry
    from edge.store.datadir import open_data_folder

    config = load_config(args.config)
    folder = open_data_folder(config.paths.data_dir, branch_id=config.branch.id,
                              clips_dir=config.clips.resolve_dir(config.paths.data_dir))
    store = folder.store
    try:
        plate = PlateRegistry(store).register(person_id=args.person, plate=args.plate)
    except EnrolmentError as exc:
        print(t("plate_failed", lang, message=str(exc), code=exc.code), file=sys.stderr)
        return 2
    finally:
        folder.close()
    person = store.get_person(plate.person_id)
    print(t("plate_added", lang, plate=plate.plate, kind=plate.kind, name=person.name if person else "?",
            id=plate.id))
    return 0


def cmd_plates_list(args: argparse.Namespace, lang: str) -> int:
    from edge.store.datadir import open_data_folder

    config = load_config(args.config)
    folder = open_data_folder(config.paths.data_dir, branch_id=config.branch.id,
                              clips_dir=config.clips.resolve_dir(config.paths.data_dir))
    store = folder.store
    plates = store.list_plates(args.person)
    folder.close()
    if not plates:
        print(t("plates_none", lang))
    for p in plates:
        print(f"{p.plate:<10} {p.kind:<18} {p.person_id}")
    return 0


def cmd_plates_remove(args: argparse.Namespace, lang: str) -> int:
    from edge.parking.registry import PlateRegistry
    from edge.store.datadir import open_data_folder

    config = load_config(args.config)
    folder = open_data_folder(config.paths.data_dir, branch_id=config.branch.id,
                              clips_dir=config.clips.resolve_dir(config.paths.data_dir))
    store = folder.store
    removed = PlateRegistry(store).remove(person_id=args.person, plate=args.plate)
    folder.close()
    if not removed:
        print(t("plate_failed", lang, message=f"{args.person} has no plate {args.plate}", code="not_found"),
              file=sys.stderr)
        return 2
    print(t("plate_removed", lang, plate=args.plate))
    return 0


def cmd_eval_plates(args: argparse.Namespace, lang: str) -> int:
    from edge.evaluation.eval_plates import evaluate
    from vision.plates.reader import ReaderConfig

    labels = args.labels or args.root / "labels.csv"
    result = evaluate(args.root, labels, baseline=not args.no_baseline, limit=args.limit,
                      config=ReaderConfig(det_max_side=args.det_max_side, fallback_max_side=args.fallback_max_side))
    args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    keys = ("scene_exact", "crop_exact", "char_accuracy", "ms_per_scene", "ms_per_crop")
    print(f"{'':<16}" + "".join(f"{k:>15}" for k in keys))
    for name in ("rapidocr_raw", "ours"):
        if name in result:
            print(f"{name:<16}" + "".join(f"{result[name][k]!s:>15}" for k in keys))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             eval_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plates = sub.add_parser("plates", help="车牌登记 / registered plates").add_subparsers(dest="plates_cmd",
                                                                                      required=True)
    for name, func, text in (("add", cmd_plates_add, "登记车牌 / register a plate"),
                             ("remove", cmd_plates_remove, "删除车牌 / remove a plate")):
        cmd = plates.add_parser(name, help=text)
        cmd.add_argument("--config", type=Path, required=True)
        cmd.add_argument("--person", required=True, help="人员编号 / person id")
        cmd.add_argument("--plate", required=True, help="车牌，例如 皖A12345 / plate, e.g. 皖A12345")
        cmd.set_defaults(func=func)
    lst = plates.add_parser("list", help="列出车牌 / list plates")
    lst.add_argument("--config", type=Path, required=True)
    lst.add_argument("--person", default=None)
    lst.set_defaults(func=cmd_plates_list)

    ev = eval_sub.add_parser("plates", help="车牌识别评测 / evaluate plate reading against raw RapidOCR")
    ev.add_argument("--root", type=Path, required=True)
    ev.add_argument("--labels", type=Path, default=None, help="labels.csv (default: ROOT/labels.csv)")
    ev.add_argument("--json", type=Path, required=True)
    ev.add_argument("--limit", type=int, default=None)
    ev.add_argument("--no-baseline", action="store_true", help="skip raw RapidOCR")
    ev.add_argument("--det-max-side", type=int, default=480)
    ev.add_argument("--fallback-max-side", type=int, default=960)
    ev.set_defaults(func=cmd_eval_plates)
