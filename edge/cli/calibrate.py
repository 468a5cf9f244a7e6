"""``smartbranch calibrate lens|floor``: camera calibration for sites without a browser.

``lens`` finds the checkerboard in every snapshot of a folder, fits the lens and prints it;
``floor`` fits the image-to-floor homography to marked points from a CSV file (x_px,y_px,x_m,y_m)
and prints each point's error. Both print the YAML to paste into the camera's entry, or, given
``--config``, save it there as a new config version (validated first, so a bad result is never
written; the calibration page can roll it back). Any refusal exits with status 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import copy
import csv
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from calibration.errors import CalibrationError
from calibration.homography import fit_floor_homography
from calibration.lens import calibrate_lens, find_board, undistort_maps
from edge.cli.calibrate_text import t

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class Refused(Exception):
    """Bad input for a calibrate command; the message is already in the user's language."""


def _board(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(t("bad_board", "en", board=text)) from None
    return cols, rows


def _load_images(folder: Path, lang: str) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    if not folder.is_dir():
        raise Refused(t("not_a_folder", lang, folder=folder))
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise Refused(t("no_images", lang, folder=folder))
    images: list[tuple[str, np.ndarray]] = []
    lines: list[str] = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            lines.append(t("unreadable", lang, name=path.name))
            continue
        if images and image.shape[:2] != images[0][1].shape[:2]:
            first, ref = images[0]
            raise Refused(t("size_mismatch", lang, name=path.name, size=f"{image.shape[1]}x{image.shape[0]}",
                            first=first, first_size=f"{ref.shape[1]}x{ref.shape[0]}"))
        images.append((path.name, image))
    if not images:
        raise Refused(t("no_images", lang, folder=folder))
    return images, lines


def cmd_lens(args: argparse.Namespace, lang: str) -> int:
    images, lines = _load_images(args.images, lang)
    board_text = f"{args.board[0]}x{args.board[1]}"
    corners: list[np.ndarray] = []
    used: list[str] = []
    for name, image in images:
        found = find_board(image, args.board)
        if found is None:
            lines.append(t("not_found", lang, name=name, board=board_text))
            continue
        corners.append(found)
        used.append(name)
        lines.append(t("found", lang, name=name, corners=len(found)))
    h, w = images[0][1].shape[:2]
    print(t("lens_header", lang, used=len(used), total=len(images), w=w, h=h))
    print("\n".join(lines))
    model = calibrate_lens(corners, board=args.board, square_mm=args.square_mm, image_size=(w, h),
                           fix_k3=not args.free_k3)
    k1, k2, p1, p2, k3 = model.dist
    print(t("lens_result", lang, fx=model.fx, fy=model.fy, cx=model.cx, cy=model.cy, k1=k1, k2=k2, p1=p1, p2=p2,
            k3=k3))
    per_image = ", ".join(f"{n} {e:.2f}" for n, e in zip(used, model.per_image_rms, strict=True))
    print(t("lens_rms", lang, rms=model.rms, per_image=per_image))
    section = model.to_config()
    section.update({k: round(float(section[k]), 3) for k in ("fx", "fy", "cx", "cy")})
    section["dist"] = [round(float(v), 6) for v in section["dist"]]
    section["rms"] = round(float(section["rms"]), 4)
    if args.preview is not None:
        first = dict(images)[used[0]]
        cv2.imwrite(str(args.preview), undistort_maps(model).apply(first))
        print(t("preview", lang, path=args.preview))
    _write_json(args.json, {"lens": section, "per_image_rms": dict(zip(used, model.per_image_rms, strict=True)),
                            "not_found": [n for n, _ in images if n not in used]}, lang)
    _publish(args, lang, "what_lens", {"lens": section}, lambda entry: {**entry, "lens": section})
    return 0


def _read_points(path: Path, lang: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(t("csv_unreadable", lang, path=path, error=exc)) from exc
    image: list[tuple[float, float]] = []
    floor: list[tuple[float, float]] = []
    for line, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        try:
            x, y, fx, fy = (float(c) for c in cells)
        except ValueError:
            if line == 1 and not image:  # a header line
                continue
            raise Refused(t("csv_row", lang, path=path, line=line, row=",".join(row))) from None
        image.append((x, y))
        floor.append((fx, fy))
    return image, floor


def cmd_floor(args: argparse.Namespace, lang: str) -> int:
    image, floor = _read_points(args.points, lang)
    fit = fit_floor_homography(image, floor, ransac=not args.no_ransac)
    print(t("floor_header", lang, count=len(image), ransac=t("no" if args.no_ransac else "yes", lang)))
    print(t("floor_columns", lang))
    for i, ((x, y), (fx, fy)) in enumerate(zip(image, floor, strict=True)):
        kept = t("yes" if fit.inliers[i] else "no", lang)
        print(f"{i + 1:<4} ({x:8.1f}, {y:8.1f})  ({fx:6.2f}, {fy:6.2f})  {fit.per_point_error_m[i]:8.3f}  "
              f"{fit.per_point_error_px[i]:9.2f}   {kept}")
    print(t("floor_rms", lang, rms_m=fit.rms_m, rms_px=fit.rms_px))
    if fit.outlier_numbers:
        print(t("floor_outliers", lang, points=", ".join(map(str, fit.outlier_numbers))))
    worst = max(e for e, k in zip(fit.per_point_error_m, fit.inliers, strict=True) if k)
    if worst > args.max_error_m:
        raise Refused(t("floor_too_far", lang, error=worst, limit=args.max_error_m))
    section = {"image_points": [[round(x, 2), round(y, 2)] for (x, y), k in zip(image, fit.inliers, strict=True) if k],
               "floor_points": [[round(x, 4), round(y, 4)] for (x, y), k in zip(floor, fit.inliers, strict=True) if k],
               "max_error_m": args.max_error_m}
    _write_json(args.json, {"floor": section, "fit": fit.as_dict()}, lang)

    def update(entry: dict[str, Any]) -> dict[str, Any]:
        if entry.get("role") != "counter":
            raise Refused(t("not_counter", lang, camera=args.camera, role=entry.get("role")))
        counter = dict(entry.get("counter") or {})
        counter["floor"] = section
        return {**entry, "counter": counter}

    _publish(args, lang, "what_floor", {"counter": {"floor": section}}, update)
    return 0


def _write_json(path: Path | None, data: dict[str, Any], lang: str) -> None:
    if path is not None:
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        print(t("json", lang, path=path))


def _publish(args: argparse.Namespace, lang: str, what: str, block: dict[str, Any],
             update: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Save into the camera's entry of ``--config`` as a new version, or print the YAML to paste."""
    if args.config is None:
        print(t("paste", lang, camera=args.camera) if args.camera else t("paste_any", lang))
        print(yaml.safe_dump(block, allow_unicode=True, sort_keys=False, default_flow_style=None))
        return
    if not args.camera:
        raise Refused(t("no_camera", lang, camera="(--camera)", cameras="-"))
    from edge.calibrate.camera_yaml import set_camera
    from edge.calibrate.versions import ConfigVersions

    versions = ConfigVersions(args.config)
    text = versions.current_text()
    data = yaml.safe_load(text) or {}
    cameras = [c for c in data.get("cameras") or [] if isinstance(c, dict)]
    entry = next((c for c in cameras if c.get("id") == args.camera), None)
    if entry is None:
        raise Refused(t("no_camera", lang, camera=args.camera, cameras=", ".join(str(c.get("id")) for c in cameras)))
    new_entry = update(copy.deepcopy(entry))
    result = versions.save(set_camera(text, new_entry), user=f"cli:{getpass.getuser()}",
                           summary=f"{what.removeprefix('what_')} of camera {args.camera} (smartbranch calibrate)")
    print(t("saved", lang, path=args.config, version=result.version, camera=args.camera, what=t(what, lang)))


def _run(command: Callable[[argparse.Namespace, str], int]) -> Callable[[argparse.Namespace, str], int]:
    def run(args: argparse.Namespace, lang: str) -> int:
        try:
            return command(args, lang)
        except Refused as exc:
            print(t("error", lang, message=str(exc)), file=sys.stderr)
        except CalibrationError as exc:
            print(t("error", lang, message=str(exc)), file=sys.stderr)
        return 2
    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("calibrate", help="摄像头标定 / camera calibration").add_subparsers(
        dest="calibrate_cmd", required=True)
    lens = group.add_parser("lens", help="棋盘格镜头标定 / lens calibration from checkerboard snapshots")
    lens.add_argument("--images", type=Path, required=True, help="快照文件夹 / folder of snapshots")
    lens.add_argument("--board", type=_board, default=(9, 6), help="内角点 列x行 / inner corners, e.g. 9x6")
    lens.add_argument("--square-mm", type=float, default=25.0, help="方格边长（毫米）/ square size in mm")
    lens.add_argument("--free-k3", action="store_true", help="同时估计 k3（广角镜头）/ fit k3 too (wide-angle)")
    lens.add_argument("--preview", type=Path, default=None, help="写出去畸变预览 / write an undistorted preview")
    floor = group.add_parser("floor", help="地面单应标定 / floor homography from marked points")
    lens.add_argument("--camera", default=None, help="摄像头编号（与 --config 同用）/ camera id (with --config)")
    floor.add_argument("--camera", required=True, help="摄像头编号（柜台摄像头）/ camera id (a counter camera)")
    for parser in (lens, floor):
        parser.add_argument("--config", type=Path, default=None,
                            help="保存到此配置（新版本）/ save into this config as a new version")
        parser.add_argument("--json", type=Path, default=None, help="结果 JSON / write the result as JSON")
    floor.add_argument("--points", type=Path, required=True, help="CSV：x_px,y_px,x_m,y_m")
    floor.add_argument("--max-error-m", type=float, default=0.25, help="最大允许误差（米）/ largest error accepted")
    floor.add_argument("--no-ransac", action="store_true", help="不剔除离群点 / keep every point")
    lens.set_defaults(func=_run(cmd_lens))
    floor.set_defaults(func=_run(cmd_floor))
