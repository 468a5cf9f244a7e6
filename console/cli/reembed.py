"""``smartbranch console reembed``: recompute every person's template with the face model the console runs now,
from their stored encrypted photos (:mod:`console.reembed`), with a progress bar.

Run it after changing ``face.engine`` in console.yaml. ``--model-id`` names the model the templates must be of:
when the configured engine is another one, nothing is done (exit code 2), so a typo in the config cannot
re-embed a bank's gallery with the wrong model. The run can be stopped at any time (Ctrl-C, a crash) and
started again: it goes on with the persons not yet done. Each person's new template is one gallery change,
so the edges running the new model receive it at their next sync (with ``sync.mqtt`` set, at once). Exit code
0 when every person is done, 1 when some could not be (no face for the new model, or changed meanwhile: run it
again), 2 when nothing could start.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor

from console.audit import record
from console.cli.common import add_config_arg, config_of, operator_name, schema_problem
from console.context import ConsoleContext
from console.db import make_engine
from console.reembed import STATUSES, Reembedded, pending, reembed_person
from console.sync.announce import install_announcer

ANNOUNCE_WAIT_S = 5.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser("reembed", help="用当前人脸模型重算全部模板 / recompute every template with the current "
                                         "face model")
    add_config_arg(cmd)
    cmd.add_argument("--model-id", default=None,
                     help="模板须属于的模型（须与配置的引擎一致）/ the model the templates must be of (the configured "
                          "engine's)")
    cmd.add_argument("--limit", type=int, default=None, help="本次最多处理的人数 / at most this many persons this run")
    cmd.set_defaults(func=cmd_reembed)


def cmd_reembed(args: argparse.Namespace) -> int:
    config = config_of(args)
    engine = make_engine(config.database_url)
    try:
        problem = schema_problem(engine)
    finally:
        engine.dispose()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    ctx = ConsoleContext.open(config)
    announcer = install_announcer(ctx)
    try:
        return _run(ctx, args)
    finally:
        if announcer is not None:
            announcer.flush(ANNOUNCE_WAIT_S)
        ctx.close()


def _run(ctx: ConsoleContext, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    face = ctx.engine()
    model_id = face.model_id
    if args.model_id is not None and args.model_id != model_id:
        print(f"配置的人脸引擎是 {model_id}，不是 {args.model_id}：请先修改 console.yaml 的 face.engine / "
              f"the configured face engine is {model_id}, not {args.model_id}: change face.engine in console.yaml "
              "first",
              file=sys.stderr)
        return 2
    todo = pending(ctx, model_id)
    if args.limit is not None:
        todo = todo[:max(0, args.limit)]
    actor = operator_name()
    counts: Counter[str] = Counter()
    with ctx.db.transaction() as session:
        record(session, actor, "reembed_start", object_type="gallery", object_id=model_id,
               detail={"persons": len(todo)})
    workers = ctx.config.face.engine_instances
    with tqdm(total=len(todo), unit="人", desc=f"重算模板 / re-embed ({model_id})", file=sys.stderr) as bar, \
            ThreadPoolExecutor(workers, thread_name_prefix="reembed") as pool:
        window: deque[Future[Reembedded]] = deque()
        ids = iter(todo)
        while True:
            while len(window) < 2 * workers and (person_id := next(ids, None)) is not None:
                window.append(pool.submit(reembed_person, ctx, face, person_id, actor))
            if not window:
                break
            counts[window.popleft().result().status] += 1
            bar.update(1)
    with ctx.db.transaction() as session:
        record(session, actor, "reembed_done", object_type="gallery", object_id=model_id,
               detail={s: counts[s] for s in STATUSES})
    left = len(pending(ctx, model_id))
    print(f"模板重算完成（{model_id}）：完成 {counts['done']}，无可用人脸 {counts['no_face']}，期间有改动 "
          f"{counts['changed']}，已删除 {counts['gone']}；仍待处理 {left}")
    print(f"Re-embedding finished ({model_id}): done {counts['done']}, no usable face {counts['no_face']}, "
          f"changed meanwhile {counts['changed']}, erased {counts['gone']}; still to do {left}")
    return 0 if counts["no_face"] + counts["changed"] == 0 else 1
