"""The central console's throughput on PostgreSQL and SQLite, side by side.

    python -m bench.console --json bench-console.json --faces ../shared/data/faces/east_asian \\
        --import-photos 64 --persons 100000 --clients 20 --repeats 3

For each backend (a fresh database each: a new PostgreSQL database on the server, a new SQLite file):

- ``import_photos_per_s``: a bulk import of ``--import-photos`` real face photos (one per identity of
  ``--faces``) through the importer the CLI and the web upload run (CSV + photo folder, 2 workers over the
  2-instance engine pool), on a fresh database per repeat; photos per second of wall time, median of the
  repeats. ``engine_photos_per_s`` is the ceiling the face engine alone allows on the same photos (the quality
  gates and the embedding on the same pool, no database), which says what limits the import.
- ``duplicate_search_ms_100k``: ``--persons`` persons are written straight into the database (synthetic
  unit-vector templates, encrypted as enrolment stores them, one photo row and one gallery change each: the
  photo rows are bookkeeping only, their blobs are not written), then the bank-wide duplicate index answers
  searches of random probes: each search reads the newest gallery change first, as every enrolment's check
  does. Median over ``--searches``; ``index_build_s`` is the first search (decrypting every template).
- ``list_p50_ms`` / ``list_p95_ms``: a real console server (uvicorn in this process) answers
  ``--clients`` concurrent clients (asyncio, in a process of their own) paging the persons list
  (``GET /api/persons?limit=50&offset=…`` over the first 20 pages, with an API token) at ``--persons``
  persons; ``search_p50_ms`` / ``search_p95_ms`` the same for a name search (``q=``, 104 different
  searches). The server keeps each answer until a write changes what the list shows
  (:mod:`console.persons_cache`), so after the first request for a page the clients mostly measure the
  one statement that reads the token and the data version (:mod:`console.persons_fast`) and HTTP; each run
  starts with an empty cache (its first requests are computed). Each run is made once per load client
  (:mod:`bench.console_load`): ``raw`` gives the ``list_*``/``search_*`` keys, ``httpx`` (the client of earlier
  figures) ``httpx_list_*``; ``workers2_list_*``: ``console run`` with 2 processes (:mod:`bench.console_workers`).
- ``list_server_cpu_ms`` / ``search_server_cpu_ms``: the server's CPU time (this process's, all threads) per
  request over the same run: what one answer costs the server, a figure the machine's other load barely moves
  (the latencies are mostly the wait for a core on a busy machine).
- ``list_miss_ms`` / ``search_miss_ms``: what an answer that is not kept costs: the list's query and its
  JSON, one request at a time in this process (no HTTP), median over the same pages and searches.

Tests never assert these numbers; this command measures them. The machine's other load shows in the spread
between repeats, which the JSON keeps.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, insert, text

from alerts.server import ServerThread
from bench.common import percentile, print_table, write_json
from bench.console_load import LoadPlan, run_load
from bench.console_workers import measure_workers
from console import persons_cache
from console.app import create_app
from console.config import ConsoleConfig, DatabaseConfig
from console.context import ConsoleContext
from console.db import utcnow
from console.dupindex import TemplateCipher, index_for
from console.enrol_photos import PhotoUpload, check_photo
from console.importer.csvfile import COLUMNS, parse_csv
from console.importer.photos import FolderPhotos
from console.importer.service import run_in_foreground
from console.migrate import upgrade
from console.persons_query import PersonFilter, list_persons
from console.security import principal_for
from console.tables import Branch, GalleryChange, Person, Photo, User
from console.users import create_token, create_user
from vision.engines.base import DlibEngineConfig
from vision.engines.owner import EnginePool, EnginePoolConfig
from vision.engines.registry import build_engine

logger = logging.getLogger(__name__)
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BRANCHES = 20
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LOAD_CLIENTS = ("raw", "httpx")  # bench.console_load: the lean client first (the headline keys), then httpx
PHASES = ("import", "duplicates", "list")


@contextmanager
def fresh_database(backend: str, pg_server: str, workdir: Path) -> Iterator[str]:
    """An empty database on ``backend``, dropped (or deleted) afterwards."""
    if backend == "sqlite":
        path = workdir / f"console-{secrets.token_hex(4)}.db"
        try:
            yield f"sqlite:///{path.as_posix()}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"sbbench_{secrets.token_hex(5)}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{pg_server.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def open_console(url: str, data_dir: Path, engine: EnginePool) -> Iterator[tuple[ConsoleContext, Any]]:
    """A migrated console with an admin and ``BRANCHES`` branches; (context, the admin as a principal)."""
    config = ConsoleConfig(data_dir=data_dir, database=DatabaseConfig(url=url, pool_size=25))
    ctx = ConsoleContext.open(config, engine=engine)
    try:
        upgrade(ctx.db.engine)
        with ctx.db.transaction() as session:
            for n in range(BRANCHES):
                session.add(Branch(code=f"B{n:03d}", name=f"测试支行 {n}", region=f"R{n % 4}",
                                   timezone="Asia/Shanghai"))
            user = create_user(session, username="bench", password=secrets.token_urlsafe(16), role="admin",
                               scope_kind="all", display_name="bench")
            session.flush()
            caller = principal_for(session, user, "token", token_name="bench")
        yield ctx, caller
    finally:
        ctx.close()


def face_photos(root: Path, count: int) -> list[Path]:
    """The first photo of each of the first ``count`` identities (sub-folders) under ``root``."""
    photos: list[Path] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            photos.append(images[0])
        if len(photos) == count:
            break
    if len(photos) < count:
        raise SystemExit(f"{root} holds {len(photos)} identities with a photo; --import-photos asks {count}")
    return photos


def import_csv(photos: list[Path]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS))
    writer.writeheader()
    for n, photo in enumerate(photos):
        writer.writerow({"external_id": f"E{n:05d}", "name": f"{photo.parent.name}", "role": "vip", "tier": "gold",
                         "home_branch": f"B{n % BRANCHES:03d}", "scope": "all", "plates": "",
                         "photos": f"{photo.parent.name}/{photo.name}", "notes": "",
                         "consent_purpose": "VIP greeting", "consent_date": date.today().isoformat(),
                         "consent_operator": "bench"})
    return out.getvalue().encode("utf-8")


def measure_import(url: str, workdir: Path, engine: EnginePool, photos: list[Path], root: Path) -> dict[str, Any]:
    parsed = parse_csv(import_csv(photos))
    with open_console(url, workdir / f"data-{secrets.token_hex(3)}", engine) as (ctx, caller):
        started = time.perf_counter()
        _job, outcomes = run_in_foreground(ctx, caller, "bench.csv", parsed, FolderPhotos(root))
        seconds = time.perf_counter() - started
    failed = [o for o in outcomes if o.status == "failed"]
    return {"seconds": seconds, "photos_per_s": len(photos) / seconds, "ok": len(outcomes) - len(failed),
            "failed": len(failed), "failed_codes": sorted({o.code for o in failed})}


def engine_ceiling(ctx_factory: Callable[[], ConsoleContext], photos: list[Path]) -> float:
    """Photos per second through the quality gates and embedding alone, 2 threads on the 2-instance pool."""
    ctx = ctx_factory()
    data = [p.read_bytes() for p in photos]
    lock, queue = threading.Lock(), list(range(len(data)))

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                i = queue.pop()
            try:
                check_photo(ctx, PhotoUpload(data[i], field=str(i)))
            except Exception:  # a refused photo costs its engine time too
                logger.debug("photo %d refused", i)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(data) / (time.perf_counter() - started)


def seed_persons(ctx: ConsoleContext, count: int, model_id: str, dim: int, rng: np.random.Generator) -> float:
    """Write ``count`` synthetic persons (template, one photo row, one gallery change each); seconds taken."""
    cipher = TemplateCipher(ctx.key)
    with ctx.db.transaction() as session:
        branch_ids = [b.id for b in session.query(Branch).order_by(Branch.id)]
    started = time.perf_counter()
    now = utcnow()
    batch = 5000
    for start in range(0, count, batch):
        vectors = rng.standard_normal((min(batch, count - start), dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        persons, photos, changes = [], [], []
        for j, vector in enumerate(vectors):
            n = start + j
            pid = f"{n:032x}"
            token = cipher.encrypt(vector)
            persons.append({"id": pid, "external_id": f"S{n:07d}", "name": f"客户{n:06d}", "role": "vip",
                            "tier": ("gold", "silver", "diamond")[n % 3], "notes": "",
                            "home_branch_id": branch_ids[n % len(branch_ids)], "scope_kind": "all",
                            "scope_region": None, "template": token, "model_id": model_id, "version": n + 1,
                            "created_by": "bench", "created_at": now, "updated_at": now})
            photos.append({"id": f"{n:031x}p", "person_id": pid, "blob_key": secrets.token_hex(16),
                           "sha256": "0" * 64, "content_type": "image/jpeg", "width": 600, "height": 800,
                           "face_px": 200.0, "sharpness": 40.0, "yaw": 0.0, "detector_score": 1.0,
                           "embedding": token, "model_id": model_id, "created_by": "bench", "created_at": now})
            changes.append({"person_id": pid, "kind": "upsert", "at": now})
        with ctx.db.transaction() as session:
            session.execute(insert(Person), persons)
            session.execute(insert(Photo), photos)
            session.execute(insert(GalleryChange), changes)
    # what autovacuum does within a minute of a bulk load on a real server (planner statistics, visibility map)
    if ctx.db.backend == "postgresql":
        with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with ctx.db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


def measure_duplicates(ctx: ConsoleContext, model_id: str, dim: int, searches: int,
                       rng: np.random.Generator) -> dict[str, Any]:
    index = index_for(ctx.extras, ctx.db, ctx.key, model_id, dim)
    probes = rng.standard_normal((searches + 1, dim)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    started = time.perf_counter()
    index.search(probes[0])
    build_s = time.perf_counter() - started
    full, matrix = [], []
    for probe in probes[1:]:
        t0 = time.perf_counter()
        index.search(probe)
        full.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        index.search_local(probe)
        matrix.append((time.perf_counter() - t0) * 1000)
    return {"persons_indexed": len(index), "index_build_s": build_s, "search_ms": statistics.median(full),
            "search_p95_ms": percentile(full, 0.95), "matrix_only_ms": statistics.median(matrix)}


def measure_list(ctx: ConsoleContext, clients: int, requests: int, seed: int,
                 load_clients: tuple[str, ...] = LOAD_CLIENTS, workers: int = 1) -> dict[str, Any]:
    """The persons list (first 20 pages) and a name search under ``clients`` concurrent clients, once per load
    client (each run from an empty answer cache); the first of ``load_clients`` gives the unprefixed keys."""
    with ctx.db.transaction() as session:
        user = session.query(User).filter_by(username="bench").one()
        _row, token = create_token(session, user, f"load-{seed}")
        caller = principal_for(session, user, "token", token_name=f"load-{seed}")
    out: dict[str, Any] = {"clients": clients, "requests_per_client": requests}
    for name, filters in (("list", [PersonFilter(offset=50 * n) for n in range(20)]),
                          ("search", [PersonFilter(q=f"{n:04d}") for n in range(0, 10000, 97)])):
        took = []
        for f in filters:
            started = time.perf_counter()
            with ctx.db.transaction() as session:
                json.dumps(list_persons(session, caller, f), ensure_ascii=False).encode()
            took.append((time.perf_counter() - started) * 1000)
        out[f"{name}_miss_ms"] = statistics.median(took)
    server = ServerThread(create_app(ctx.config, context=ctx), "127.0.0.1", 0)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        pages = tuple(f"/api/persons?limit=50&offset={50 * n}" for n in range(20))
        searches = tuple(f"/api/persons?limit=50&q={n:04d}" for n in range(0, 10000, 97))
        for n, client in enumerate(load_clients):
            ctx.extras.pop(persons_cache.EXTRA, None)  # each run starts with nothing kept
            prefix = "" if n == 0 else f"{client}_"
            for name, paths in (("list", pages), ("search", searches)):
                cpu0 = time.process_time()  # this process is the server: the clients run in their own
                latencies, errors, wall = run_load(LoadPlan(url, token, clients, requests, paths, seed, client))
                cpu_ms = (time.process_time() - cpu0) * 1000 / len(latencies)
                if errors:
                    raise SystemExit(f"{len(errors)} {name} requests failed, e.g. {errors[:3]}")
                out |= {f"{prefix}{name}_p50_ms": percentile(latencies, 0.5),
                        f"{prefix}{name}_p95_ms": percentile(latencies, 0.95),
                        f"{prefix}{name}_requests_per_s": len(latencies) / wall,
                        f"{prefix}{name}_server_cpu_ms": cpu_ms}
    finally:
        server.stop()
    if workers > 1:  # the same pages from `console run` with server.workers processes, the first client
        out |= measure_workers(ctx, workers, token, clients, requests, seed, load_clients[0], pages)
    return out


LIST_KEYS = ("list_p50_ms", "list_p95_ms", "search_p50_ms", "search_p95_ms", "list_requests_per_s",
             "list_server_cpu_ms", "search_server_cpu_ms")


def run_backend(backend: str, args: argparse.Namespace, engine: EnginePool, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    photos = face_photos(args.faces, args.import_photos)
    if "import" in args.phases:
        imports = []
        for r in range(args.repeats):
            with fresh_database(backend, args.pg, workdir) as url:
                imports.append(measure_import(url, workdir, engine, photos, args.faces))
                logger.info("%s import %d: %.2f photos/s", backend, r + 1, imports[-1]["photos_per_s"])
        result |= {"import_photos_per_s": statistics.median(i["photos_per_s"] for i in imports),
                   "import_runs": imports}
    rng = np.random.default_rng(7)
    with fresh_database(backend, args.pg, workdir) as url, \
            open_console(url, workdir / f"data-{backend}", engine) as (ctx, _caller):
        if "import" in args.phases:
            result["engine_photos_per_s"] = engine_ceiling(lambda: ctx, photos)
        result["seed_s"] = seed_persons(ctx, args.persons, engine.model_id, engine.dim, rng)
        result["persons"] = args.persons
        if "duplicates" in args.phases:
            dup = [measure_duplicates(ctx, engine.model_id, engine.dim, args.searches, rng)
                   for _ in range(args.repeats)]
            result |= {"duplicate_search_ms_100k": statistics.median(d["search_ms"] for d in dup),
                       "duplicate_search_p95_ms": statistics.median(d["search_p95_ms"] for d in dup),
                       "duplicate_matrix_ms": statistics.median(d["matrix_only_ms"] for d in dup),
                       "index_build_s": dup[0]["index_build_s"], "duplicate_runs": dup}
        if "list" in args.phases:
            lists = [measure_list(ctx, args.clients, args.requests, seed, args.load_clients, args.workers)
                     for seed in range(args.repeats)]
            prefixes = [""] + [f"{c}_" for c in args.load_clients[1:]]
            workers = [f"workers{args.workers}_list_{k}" for k in ("p50_ms", "p95_ms")] if args.workers > 1 else []
            for key in [p + k for p in prefixes for k in LIST_KEYS] + ["list_miss_ms", "search_miss_ms"] + workers:
                result[key] = statistics.median(run[key] for run in lists)
            result["list_runs"] = lists
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=Path("bench-console.json"))
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/faces/east_asian"),
                        help="a folder of identity sub-folders of face photos")
    parser.add_argument("--import-photos", type=int, default=64)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=25, help="requests per client and phase")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--pg", default=PG_SERVER, help="a PostgreSQL server URL whose user may create databases")
    parser.add_argument("--workers", type=int, default=2, help="one more list row: `console run` with this many "
                                                                  "processes (server.workers); 1: no such row")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"a comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--load-clients", default=",".join(LOAD_CLIENTS),
                        help="the list phase's load clients (bench.console_load), each run in turn; the first "
                             "gives the list_*/search_* keys, the others <client>_list_*")
    args = parser.parse_args(argv)
    for name, choices in (("phases", PHASES), ("load_clients", LOAD_CLIENTS)):
        chosen = tuple(c.strip() for c in getattr(args, name).split(",") if c.strip())
        if not chosen or set(chosen) - set(choices):
            raise SystemExit(f"--{name.replace('_', '-')} {','.join(chosen)}: choose from {','.join(choices)}")
        setattr(args, name, chosen)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not args.faces.is_dir():
        raise SystemExit(f"--faces {args.faces} is not a folder")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    engine = EnginePool(lambda: build_engine(DlibEngineConfig()), EnginePoolConfig(instances=2, name="bench"))
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
            for backend in backends:
                results[backend] = run_backend(backend, args, engine, Path(tmp))
    finally:
        engine.close()
    keys = [("import_photos_per_s", "≥ 8"), ("engine_photos_per_s", "the engine alone"),
            ("duplicate_search_ms_100k", "≤ 10"), ("duplicate_matrix_ms", "the matrix product alone"),
            ("index_build_s", "first search"), ("list_p50_ms", ""), ("list_p95_ms", "≤ 100"),
            ("search_p50_ms", "name search"), ("search_p95_ms", "name search"),
            ("list_server_cpu_ms", "server CPU per list request"), ("search_server_cpu_ms", "per search request"),
            ("list_miss_ms", "one answer not kept"), ("search_miss_ms", "one search not kept")]
    clients = args.load_clients  # at least one
    keys = [(k, note + (f" ({clients[0]} client)" if k in LIST_KEYS[:4] else "")) for k, note in keys]
    keys += [(f"{c}_{k}", f"the same with the {c} client") for c in clients[1:] for k in LIST_KEYS[:4]]
    keys += [(f"workers{args.workers}_list_{k}", f"console run, {args.workers} workers") for k in ("p50_ms", "p95_ms")]
    rows = [(key, "  ".join(f"{results[b][key]:>9.2f}" for b in backends), note) for key, note in keys
            if all(key in results[b] for b in backends)]
    print(f"backends: {'  '.join(f'{b:>9}' for b in backends)}   persons {args.persons}, clients {args.clients}, "
          f"median of {args.repeats}")
    print_table(rows)
    write_json(args.json, {**results, "settings": {k: str(v) for k, v in vars(args).items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
