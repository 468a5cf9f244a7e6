"""Gzip both ways on the sync routes: an edge's gzip body is inflated (capped against bombs), and answers are
gzipped when asked for (tests/console/test_sync_photos.py)."""

from __future__ import annotations

import gzip
import json
import zlib

from fastapi.testclient import TestClient
from sqlalchemy import select

from console.context import ConsoleContext
from console.sync.gzip_body import MAX_BYTES
from console.tables import Edge
from tests.console.conftest import add_branch
from tests.console.sync_helpers import add_edge


def test_a_gzipped_status_report_is_read(client: TestClient, console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "A001")
    _, auth = add_edge(console_ctx, "A001")
    cameras = [{"id": f"cam-{i}", "name": f"摄像头 {i}", "role": "lobby", "status": "ok", "fps": 10.0}
               for i in range(40)]
    raw = json.dumps({"gallery_version": 7, "model_id": "dlib", "cameras": cameras}).encode()
    assert len(raw) > 1000
    answer = client.post("/api/sync/status", content=gzip.compress(raw),
                         headers={**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    with console_ctx.db.transaction() as session:
        edge = session.scalars(select(Edge)).one()
        assert edge.gallery_version == 7 and isinstance(edge.camera_health, dict) and len(edge.camera_health) == 40


def test_a_body_that_is_not_gzip_or_inflates_too_far_is_refused(client: TestClient,
                                                                console_ctx: ConsoleContext) -> None:
    add_branch(console_ctx, "A001")
    _, auth = add_edge(console_ctx, "A001")
    headers = {**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    bad = client.post("/api/sync/status", content=b'{"gallery_version": 1}', headers=headers)
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_gzip")
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1024 * 1024)
    bomb = b"".join(packer.compress(block) for _ in range(MAX_BYTES // len(block) + 1)) + packer.flush()
    assert len(bomb) < 1024 * 1024
    big = client.post("/api/sync/status", content=bomb, headers=headers)
    assert (big.status_code, big.json()["error"]) == (413, "too_large")
