"""Face-embedding benchmark: dlib-bin's ResNet against the same network converted to ONNX, in one run.

    python -m bench.faces --json OUT.json [--repeats 5] [--dlib-repeats 3]

Both run on the same real, aligned 150x150 chips (every face dlib's HOG finds in the demo photos),
repeated to fill batches of 1, 8 and 32. dlib-bin is single-threaded whatever the machine; the ONNX
model runs under onnxruntime's CPU provider with 1 and 2 intra-op threads, and with 2 threads that
do not busy-wait between runs (``_nospin``, what the engine uses). Times are medians over
repeats, divided by the batch size. Equality: cosine and max |diff| of the raw 128-d vectors, per
face, against dlib's own ``compute_face_descriptor``. The 1-minute load average is recorded before
and after, since other processes on a 2-core box skew every figure.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import dlib
import numpy as np

from bench.common import median_ms, print_table, write_json
from edge.demo.assets import ensure_face_photos
from models.dlib_convert import DLIB_RESNET_IO, ensure_onnx
from models.onnx_session import load_session, usable_cores
from models.packs import resolve_pack
from vision.engines.base import DlibEngineConfig
from vision.engines.dlib_engine import DlibFaceEngine
from vision.imageio import decode_image
from vision.types import Image

PHOTOS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "t1.jpg", "tom_hanks.png"]
BATCHES = (1, 8, 32)
THREADS = (1, 2)
TARGET_MS = 20.0


def real_chips(engine: DlibFaceEngine, photos: Path) -> list[Image]:
    chips: list[Image] = []
    for name in PHOTOS:
        path = photos / name
        if not path.is_file():
            continue
        image = decode_image(path.read_bytes())
        chips.extend(engine.chips(image, engine.detect(image)))
    if not chips:
        raise SystemExit(f"no faces found in {photos}")
    return chips


def _rgb(chips: list[Image]) -> list[np.ndarray]:
    return [np.ascontiguousarray(c[:, :, ::-1]) for c in chips]


def _fill(chips: list[Image], n: int) -> list[Image]:
    return (chips * (n // len(chips) + 1))[:n]


def conversion_costs(dat: Path) -> tuple[dict[str, float], Path]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ensure_onnx(dat, Path(tmp))
        cold = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        ensure_onnx(dat, Path(tmp))
        warm = (time.perf_counter() - t0) * 1000
    path = ensure_onnx(dat)  # the real cache, as the engine uses it
    t0 = time.perf_counter()
    load_session(path, intra_op_threads=2)
    load = (time.perf_counter() - t0) * 1000
    return {"convert_ms_cold": cold, "ensure_onnx_ms_cached": warm, "session_load_ms": load}, path


def equality(resnet: Any, session: Any, chips: list[Image]) -> dict[str, float]:
    rgb = _rgb(chips)
    ref = np.asarray(resnet.compute_face_descriptor(rgb), np.float32)
    feed = {DLIB_RESNET_IO.input_name: np.stack(rgb)}
    out = np.asarray(session.run([DLIB_RESNET_IO.output_name], feed)[0], np.float32)
    cosine = (ref * out).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1))
    eight = np.stack(_rgb(_fill(chips, 8)))
    batched = session.run(None, {DLIB_RESNET_IO.input_name: eight})[0]
    singles = np.concatenate([session.run(None, {DLIB_RESNET_IO.input_name: eight[i:i + 1]})[0] for i in range(8)])
    return {"faces": float(len(chips)), "cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()),
            "max_abs_diff_raw": float(np.abs(ref - out).max()),
            "max_abs_diff_batch1_vs_batch8": float(np.abs(batched - singles).max())}


def timings(resnet: Any, onnx_path: Path, engine: DlibFaceEngine, chips: list[Image], repeats: int,
            dlib_repeats: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for batch in BATCHES:
        rgb = _rgb(_fill(chips, batch))
        out[f"embed_ms_per_face_dlib_b{batch}"] = median_ms(
            partial(resnet.compute_face_descriptor, rgb), dlib_repeats) / batch
    for threads, spin in [(t, True) for t in THREADS] + [(2, False)]:
        session = load_session(onnx_path, intra_op_threads=threads, spin=spin)
        suffix = "" if spin else "_nospin"
        for batch in BATCHES:
            feed = {DLIB_RESNET_IO.input_name: np.stack(_rgb(_fill(chips, batch)))}
            out[f"embed_ms_per_face_onnx_b{batch}_t{threads}{suffix}"] = median_ms(
                partial(session.run, None, feed), repeats * max(1, 32 // batch)) / batch
    eight = _fill(chips, 8)
    out["embed_ms_per_face_engine_onnx_b8"] = median_ms(lambda: engine.embed_chips(eight), repeats * 4) / 8
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--repeats", type=int, default=5, help="repeats for the ONNX medians")
    parser.add_argument("--dlib-repeats", type=int, default=3, help="repeats for dlib-bin's medians (slow)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()[0]
    dat = resolve_pack("dlib_resnet_v1").path_for("recognition")
    costs, onnx_path = conversion_costs(dat)
    engine = DlibFaceEngine(DlibEngineConfig(onnx_threads=min(2, usable_cores())))
    chips = real_chips(engine, ensure_face_photos())
    resnet = dlib.face_recognition_model_v1(str(dat))
    eq = equality(resnet, load_session(onnx_path, intra_op_threads=2), chips)
    times = timings(resnet, onnx_path, engine, chips, args.repeats, args.dlib_repeats)
    headline_dlib = times["embed_ms_per_face_dlib_b32"]
    headline_onnx = times["embed_ms_per_face_onnx_b32_t2_nospin"]  # the engine's settings
    result: dict[str, Any] = {
        "embed_ms_per_face_dlib": headline_dlib,
        "embed_ms_per_face_onnx": headline_onnx,
        "speedup_onnx_vs_dlib": headline_dlib / headline_onnx,
        "target_ms_per_face": TARGET_MS,
        "meets_target": headline_onnx <= TARGET_MS,
        **times, **eq, **costs,
        "cores": usable_cores(), "loadavg_1m_before": load_before, "loadavg_1m_after": os.getloadavg()[0],
        "onnx_model": onnx_path.name,
    }
    rows = [("embed_ms_per_face_dlib", f"{headline_dlib:.1f}", "dlib-bin compute_face_descriptor, batch 32, 1 thread"),
            ("embed_ms_per_face_onnx", f"{headline_onnx:.1f}",
             f"onnxruntime CPU, batch 32, 2 threads, no spinning as the engine runs it (target <= {TARGET_MS:.0f})")]
    for key, value in times.items():
        rows.append((key, f"{value:.1f}", "ms per face, median"))
    rows += [("cosine_min", f"{eq['cosine_min']:.7f}", f"ONNX vs dlib over {int(eq['faces'])} real faces"),
             ("max_abs_diff_raw", f"{eq['max_abs_diff_raw']:.2e}", "raw 128-d vectors (norm ~1.4)"),
             ("max_abs_diff_batch1_vs_batch8", f"{eq['max_abs_diff_batch1_vs_batch8']:.2e}", "same chips"),
             ("convert_ms_cold", f"{costs['convert_ms_cold']:.0f}", "parse .dat + build + check + write"),
             ("ensure_onnx_ms_cached", f"{costs['ensure_onnx_ms_cached']:.0f}", "sha256 of .dat and of the model"),
             ("session_load_ms", f"{costs['session_load_ms']:.0f}", "onnxruntime session, 2 threads"),
             ("loadavg_1m", f"{load_before:.1f} -> {result['loadavg_1m_after']:.1f}",
              f"machine load; {usable_cores()} cores")]
    print_table(rows)
    write_json(args.json, result)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
