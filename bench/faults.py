"""Fault suite: faults injected into a live edge service with cameras running, then restart and check.

    python -m bench.faults --json OUT.json [--only kill9_enrolment,wrong_key] [--workdir DIR]

Each scenario starts its own ``smartbranch edge run`` child process (127.0.0.1, a free port, the real dlib
engine) on a copy of one prepared data folder (the demo's VIP enrolled with ``smartbranch enroll``), with
cameras playing the demo's scenes from real photos and a few lobby terminals connected (``bench.terminals``):

- ``kill9_enrolment``: ``kill -9`` while an enrolment request is in flight (timed from a first enrolment);
- ``kill9_clip_write``: ``kill -9`` while a counter camera's clip is being written (its ``.part`` file is on
  disk); skipped, with the reason, when the person detector is not installed;
- ``kill9_alert_push``: ``kill -9`` from the first terminal's receipt of a live alert, while it is pushed;
- ``camera_file_vanishes``: one of two cameras' video file is removed while it plays, then put back;
- ``full_disk``: the data folder is a small filesystem (tmpfs, else ext4 on a loop device) filled up while
  the cameras run, then enrolments are posted; they must be refused cleanly and the service keep running;
- ``wrong_key``: ``SMARTBRANCH_DATA_KEY`` changed between two runs: the service must refuse to start;
- ``deleted_database``: ``edge.db`` removed between two runs: the service must refuse to start.

After each fault the service is restarted and checked (:mod:`bench.fault_checks`): a crash is an exit the
bench did not cause that was not a clean refusal (a signal such as SIGSEGV, a Python traceback, a non-zero
status after SIGTERM); an alert is lost when one that a terminal received before the fault is no longer
served with the same seq, or when a terminal does not get a stored alert after it reconnects; half-written
records are persons without a gallery entry (or the reverse), clip rows without a file, ``.part`` files,
interactions left open, a gallery id map that does not load, and a service that no longer starts.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from bench.common import print_table, write_json
from bench.fault_run import Suite
from bench.fault_scenarios import SCENARIOS
from bench.live import in_workdir

logger = logging.getLogger(__name__)

SHOULD_REFUSE = ("wrong_key", "deleted_database")


def run_faults(names: list[str], workdir: Path) -> dict[str, Any]:
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {sorted(SCENARIOS)}")
    suite = Suite.prepare(workdir, counter="kill9_clip_write" in names)
    rows = []
    for name in names:
        logger.warning("scenario %s", name)
        rows.append(SCENARIOS[name](suite))
    ran = [r for r in rows if not r["skipped"]]
    return {
        "crashes": sum(r["crashes"] for r in ran),
        "alerts_lost": sum(r["alerts_lost"] for r in ran),
        "half_written": sum(r["half_written"] for r in ran),
        "refused_to_start_correctly": sum(1 for r in ran if r["name"] in SHOULD_REFUSE and r["refused_to_start"]),
        "should_refuse": sum(1 for r in ran if r["name"] in SHOULD_REFUSE),
        "passed": sum(1 for r in ran if r["passed"]),
        "failed": sum(1 for r in ran if r["passed"] is False),
        "skipped": [r["name"] for r in rows if r["skipped"]],
        "scenarios": rows,
    }


def report(result: dict[str, Any]) -> None:
    rows = []
    for r in result["scenarios"]:
        if r["skipped"]:
            rows.append((r["name"], "skipped", r["skipped"]))
            continue
        why = (r["crash_details"] + r["alerts_lost_details"][:2] + r["half_written_details"][:3] + r["problems"])
        summary = f"crash {r['crashes']} lost {r['alerts_lost']} half {r['half_written']}"
        rows.append((r["name"], "pass" if r["passed"] else "FAIL", summary + ("; " + "; ".join(why) if why else "")))
    rows += [("crashes", str(result["crashes"]), "target 0"), ("alerts_lost", str(result["alerts_lost"]), "target 0"),
             ("half_written", str(result["half_written"]), "target 0"),
             ("refused_to_start_correctly", f"{result['refused_to_start_correctly']}/{result['should_refuse']}",
              "wrong key, deleted database")]
    print_table([(a, b, c[:400]) for a, b, c in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated scenarios (default: all): {', '.join(SCENARIOS)}")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the data folders and service logs here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    result = in_workdir(args.workdir, "bench-faults-", lambda folder: run_faults(names, folder))
    report(result)
    write_json(args.json, result)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
