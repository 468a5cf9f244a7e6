"""A hostile client against a live edge (uvicorn on loopback): big bodies are refused before they are
read, and floods of refused requests are throttled and audited in aggregate."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from edge.config import EdgeConfig
from tests.edge.conftest import ADMIN_TOKEN, ENROLLER_TOKEN, LiveEdge

MIB = 1024 * 1024
CHUNK = 256 * 1024
# What a client can push into loopback socket buffers while the server reads nothing (a few MiB on Linux).
UNREAD_SLACK = 24 * MIB


@dataclass
class Upload:
    """One raw HTTP/1.1 upload, streamed while another thread waits for the answer."""

    sent: int = 0
    sent_when_answered: int | None = None
    response: bytes = b""
    send_error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def status(self) -> int:
        return int(self.response.split(b" ", 2)[1]) if self.response else 0

    @property
    def body(self) -> dict[str, object]:
        head, _, rest = self.response.partition(b"\r\n\r\n")
        assert b"content-length" in head.lower(), head
        return dict(json.loads(rest))

    @property
    def headers(self) -> bytes:
        return self.response.partition(b"\r\n\r\n")[0].lower()


def stream_upload(port: int, path: str, *, total: int, token: str | None = None, chunked: bool = False) -> Upload:
    """POST ``total`` bytes of a multipart body to ``path``, ``CHUNK`` bytes at a time, reading the answer
    concurrently; record how much had been sent when the first byte of the answer arrived."""
    upload = Upload()
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
            "Content-Type: multipart/form-data; boundary=xyzzy"]
    head += ["Transfer-Encoding: chunked"] if chunked else [f"Content-Length: {total}"]
    if token is not None:
        head.append(f"Authorization: Bearer {token}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())

    def read() -> None:
        try:
            while data := sock.recv(65536):
                if upload.sent_when_answered is None:
                    upload.sent_when_answered = upload.sent
                upload.response += data
        except OSError:
            pass
        finally:
            upload.done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    prefix = b"--xyzzy\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.jpg\"\r\n\r\n"
    payload = prefix + b"\xff" * (CHUNK - len(prefix))
    try:
        while upload.sent < total and not upload.done.is_set():
            piece = payload if upload.sent == 0 else b"\xff" * CHUNK
            piece = piece[: total - upload.sent]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            upload.sent += len(piece)
        if chunked and upload.sent >= total:
            sock.sendall(b"0\r\n\r\n")
    except OSError as exc:  # the server closed the connection: what we want once it has answered
        upload.send_error = type(exc).__name__
    upload.done.wait(120)
    sock.close()
    return upload


@pytest.fixture()
def edge(make_config: Callable[..., EdgeConfig], live_edge: Callable[..., LiveEdge]) -> LiveEdge:
    return live_edge(make_config())


# -- defect 6: bodies -----------------------------------------------------------------------------
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_anonymous_huge_upload_is_refused_before_its_body_is_read(edge: LiveEdge, chunked: bool) -> None:
    # given an anonymous client that starts streaming a 256 MiB photo upload
    total = 256 * MIB
    upload = stream_upload(edge.server.port, "/api/persons", total=total, chunked=chunked)
    # then the 401 comes after the headers, while most of the body was never sent
    assert upload.status == 401, upload.response[:300]
    assert upload.body["detail"] == {"code": "unauthorised", "message": "missing or invalid token"}
    assert upload.sent_when_answered is not None and upload.sent_when_answered < UNREAD_SLACK
    # and the server closed the connection instead of reading on: the client could not send the rest
    assert b"connection: close" in upload.headers
    assert upload.sent < total
    # and nothing was stored
    assert edge.runtime.store.count_persons() == 0


def test_a_declared_oversized_upload_is_413_before_its_body_is_read(edge: LiveEdge) -> None:
    # given an enroller whose upload declares 64 MiB (the photo limit is 10 MiB)
    upload = stream_upload(edge.server.port, "/api/persons", total=64 * MIB, token=ENROLLER_TOKEN)
    # then it is refused with the reason at once
    assert upload.status == 413, upload.response[:300]
    detail = upload.body["detail"]
    assert isinstance(detail, dict) and detail["code"] == "too_large" and "bytes" in str(detail["message"])
    assert upload.sent_when_answered is not None and upload.sent_when_answered < UNREAD_SLACK
    assert upload.sent < 64 * MIB


def test_a_chunked_upload_is_cut_at_the_limit_by_the_bytes_received(edge: LiveEdge) -> None:
    # given an enroller streaming a chunked body (no length declared) far past the photo limit
    limit = edge.runtime.config.server.max_upload_bytes
    upload = stream_upload(edge.server.port, "/api/persons", total=64 * MIB, token=ENROLLER_TOKEN, chunked=True)
    # then it is refused 413 once the received bytes pass the limit, and the rest is not read
    assert upload.status == 413, upload.response[:300]
    assert dict(upload.body["detail"])["code"] == "too_large"  # type: ignore[call-overload]
    assert upload.sent_when_answered is not None and limit < upload.sent_when_answered < limit + UNREAD_SLACK
    assert upload.sent < 64 * MIB


@pytest.mark.parametrize(("path", "declared"), [("/api/clips/c1/verdict", True), ("/api/clips/c1/hold", False)])
def test_json_bodies_are_capped_too(edge: LiveEdge, path: str, declared: bool) -> None:
    # given a body of 1 MiB of JSON for a route that takes a few hundred bytes
    body = json.dumps({"verdict": "compliant", "notes": "x" * MIB}).encode()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    content: bytes | object = body if declared else iter([body[i:i + CHUNK] for i in range(0, len(body), CHUNK)])
    # when it is posted (with a Content-Length, or chunked)
    response = httpx.post(f"{edge.http}{path}", headers=headers, content=content)  # type: ignore[arg-type]
    # then it is 413 with the reason
    assert response.status_code == 413
    assert response.json()["detail"]["code"] == "too_large"


# -- defect 7: refusals ---------------------------------------------------------------------------
def test_a_flood_of_anonymous_refusals_is_throttled_and_audited_in_a_few_rows(edge: LiveEdge) -> None:
    # given 200 anonymous requests to an audited endpoint, from one address
    burst = edge.runtime.config.server.refusal_burst
    with httpx.Client(base_url=edge.http) as client:
        statuses = [client.get("/api/clips") for _ in range(200)]
    # then `burst` and one more are 401 and the rest 429, with Retry-After
    assert [r.status_code for r in statuses] == [401] * (burst + 1) + [429] * (200 - burst - 1)
    throttled = statuses[-1]
    assert throttled.json()["detail"]["code"] == "too_many_refusals"
    assert 0 < int(throttled.headers["retry-after"]) <= edge.runtime.config.server.refusal_window_s
    # and even a valid token from that address waits
    assert httpx.get(f"{edge.http}/api/clips", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 429
    # and when the counts are written (every window, and at shutdown), the audit log has one row per status
    edge.server.stop()
    rows = edge.runtime.review.list_audit(limit=500)
    assert sorted((r.actor, r.action, r.outcome) for r in rows) == [
        ("anonymous", "list", "refused"), ("anonymous", "list", "throttled")]
    counts = {r.outcome: int(r.detail.split(": ")[1].split(" ")[0]) for r in rows}
    assert counts == {"refused": burst + 1, "throttled": 200 - burst}
    assert all("from 127.0.0.1" in r.detail and "GET /api/clips" in r.detail for r in rows)


def test_refusals_of_the_enrolment_routes_count_too(edge: LiveEdge) -> None:
    burst = edge.runtime.config.server.refusal_burst
    for _ in range(burst + 1):
        assert httpx.get(f"{edge.http}/api/persons").status_code == 401
    response = httpx.post(f"{edge.http}/api/persons", files={"photo": ("a.jpg", b"x" * 1000, "image/jpeg")})
    assert response.status_code == 429
    assert response.headers["connection"] == "close"
    edge.server.stop()
    rows = {(r.action, r.outcome) for r in edge.runtime.review.list_audit()}
    assert rows == {("list_persons", "refused"), ("enrol_person", "throttled")}
