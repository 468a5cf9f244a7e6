"""bench.console_load: both load clients send the same requests to a real server and read every answer whole,
one request after another per client; an answer that is not 200 is reported, not counted as a success."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Header, Response

from alerts.server import ServerThread
from bench.console_load import LoadPlan, run_load


@pytest.mark.parametrize("client", ["httpx", "raw"])
def test_each_client_reads_whole_answers_and_reports_refusals(client: str) -> None:
    app = FastAPI()
    seen: list[str] = []

    @app.get("/items/{n}")
    def item(n: int, authorization: str = Header(), accept_encoding: str = Header()) -> Response:
        seen.append(f"{authorization}|{accept_encoding}")
        return Response(b"x" * (n * 1000), status_code=200 if n else 404)

    server = ServerThread(app, "127.0.0.1", 0)
    server.start()
    try:
        plan = LoadPlan(f"http://127.0.0.1:{server.port}", "tok", clients=3, requests_per_client=4,
                        paths=("/items/0", "/items/1", "/items/70"), seed=1, client=client)
        latencies, errors, wall = run_load(plan, timeout_s=120)
    finally:
        server.stop()
    assert len(latencies) == 12 and wall > 0
    assert len(seen) == 12 and set(seen) == {"Bearer tok|gzip, deflate"}
    assert errors and all(e == "404 /items/0" for e in errors)
