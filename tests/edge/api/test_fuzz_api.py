"""Fuzzing the edge API from its own OpenAPI schema (schemathesis) against a live uvicorn server.

Every operation gets generated requests, valid and invalid (wrong types, missing and extra fields,
odd strings in paths and queries), sent with an admin token so that they reach the handlers. The
only property checked is the one that matters for a box in a branch: no answer is a 5xx and
nothing crashes (a crash is a failed call, which fails the test too). The number of examples per
operation is kept small so that the whole run takes about a minute on two cores; raise
``SMARTBRANCH_FUZZ_EXAMPLES`` for a longer search.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import APIOperation, BaseSchema

from alerts.server import ServerThread
from edge.api.app import create_app
from edge.config import load_config
from edge.runtime import EdgeRuntime
from tests.edge.conftest import ADMIN_TOKEN, LiveEdge, config_dict
from vision.engines.base import FaceEngine

EXAMPLES = int(os.environ.get("SMARTBRANCH_FUZZ_EXAMPLES", "60"))
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def fuzzed_edge(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine) -> Iterator[LiveEdge]:
    """One live edge (real engine, no cameras) for every operation of the run."""
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "smartbranch.yaml"
    path.write_text(yaml.safe_dump(config_dict(folder / "data"), allow_unicode=True), encoding="utf-8")
    config = load_config(path)
    runtime = EdgeRuntime(config.model_copy(update={"server": config.server.model_copy(update={"port": 0})}),
                          engine=engine)
    server = ServerThread(create_app(runtime, start_cameras=False), "127.0.0.1", 0)
    server.start()
    yield LiveEdge(runtime, server)
    server.stop()
    runtime.stop()


@pytest.fixture(scope="module")
def edge_schema(fuzzed_edge: LiveEdge) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed_edge.http}/openapi.json")


def fuzz_operation(operation: APIOperation, mode: GenerationMode) -> None:
    """Send ``EXAMPLES`` generated requests of ``mode`` to ``operation``; raise on the first 5xx or failed call."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(case: Case) -> None:
        case.call_and_validate(headers=ADMIN, checks=[not_a_server_error], timeout=60)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_request_gets_a_server_error(edge_schema: BaseSchema, fuzzed_edge: LiveEdge, mode: GenerationMode) -> None:
    # given every operation of the edge's OpenAPI schema
    operations = [result.ok() for result in edge_schema.get_all_operations()]
    assert len(operations) >= 15
    # when each gets generated requests (schemathesis' lazy pytest loader does not run on this pytest, so the
    # operations are driven with their Hypothesis strategies, as its docs show for plain tests)
    failures: list[str] = []
    fuzzed = 0
    for operation in operations:
        try:
            fuzz_operation(operation, mode)
        except Unsatisfiable:  # nothing invalid can be sent (a route whose only input is a free-text path)
            continue
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
        fuzzed += 1
    # then none answered 5xx, and every call got an answer
    assert not failures, "\n\n".join(failures)
    assert fuzzed >= (len(operations) if mode is GenerationMode.POSITIVE else 5)


def test_the_schema_covers_every_route(edge_schema: BaseSchema) -> None:
    # the fuzzing above is only as wide as the schema: every API route must be in it
    paths = set(edge_schema.raw_schema["paths"])
    assert {"/api/persons", "/api/persons/{person_id}/photos", "/api/alerts", "/api/alerts/{alert_id}/ack",
            "/api/clips", "/api/clips/{clip_id}/video", "/api/clips/{clip_id}/verdict", "/api/audit",
            "/api/stats", "/api/snapshots/{snapshot_id}"} <= paths
