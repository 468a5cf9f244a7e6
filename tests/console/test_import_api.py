"""Bulk import over HTTP on both backends: upload, the event stream, the report, roles, scope and bad files.
Real photos and the real dlib engine pool; the job runs in the console's background thread."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from console.context import ConsoleContext
from tests.console.conftest import add_branch, add_token, add_user
from tests.console.test_import import CONSENT, blurred, csv_bytes, zip_bytes


def _bearer(ctx: ConsoleContext, username: str, role: str, **scope: Any) -> dict[str, str]:
    ctx.engine()  # the session's engine pool, fetched on the test's thread rather than by two import workers
    return {"Authorization": f"Bearer {add_token(ctx, add_user(ctx, username, role, **scope))}"}


def _upload(client: TestClient, headers: dict[str, str], data: bytes, photos: bytes) -> Any:
    return client.post("/api/imports", headers=headers,
                       files={"csv": ("people.csv", data, "text/csv"),
                              "photos": ("photos.zip", photos, "application/zip")})


def _events(client: TestClient, headers: dict[str, str], job_id: str) -> tuple[list[dict[str, Any]], str]:
    """Every job the stream sent, and its whole text; the stream ends by itself."""
    with client.stream("GET", f"/api/imports/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    jobs = [json.loads(line.removeprefix("data: ")) for line in text.splitlines() if line.startswith("data: ")]
    return jobs, text


def test_an_upload_streams_its_progress_and_its_report_lists_every_row(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: Callable[[str], bytes]) -> None:
    add_branch(console_ctx, "SH001")
    admin = _bearer(console_ctx, "boss", "admin")
    photos = zip_bytes({"obama.jpg": photo_bytes("obama.jpg"), "biden.jpg": photo_bytes("biden.jpg"),
                        "blurred.jpg": blurred(photo_bytes("obama2.jpg"))})
    data = csv_bytes(f"E1,奥巴马,vip,gold,SH001,,,obama.jpg,,{CONSENT}",
                     f"E2,拜登,vip,gold,SH001,,,biden.jpg,,{CONSENT}",
                     f"E3,模糊,vip,gold,SH001,,,blurred.jpg,,{CONSENT}",
                     f"E4,=HYPERLINK(\"x\"),vip,gold,NOPE,,,obama.jpg,,{CONSENT}", bom=True)
    # when a CSV and a zip are uploaded
    answer = _upload(client, admin, data, photos)
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert (job["status"], job["total"], job["filename"]) == ("queued", 4, "people.csv")
    # then the stream sends the job as it changes, with done never going back, and ends when it is done
    jobs, text = _events(client, admin, job["id"])
    assert text.startswith(":")  # a comment first: proxies and the browser see the stream open at once
    done = [j["done"] for j in jobs]
    assert done == sorted(done) and len(set(done)) >= 2
    last = jobs[-1]
    assert (last["status"], last["done"], last["ok"], last["failed"], last["unchanged"]) == ("done", 4, 2, 2, 0)
    assert last["finished_at"] is not None
    assert client.get(f"/api/imports/{job['id']}", headers=admin).json() == last
    assert [j["id"] for j in client.get("/api/imports", headers=admin).json()] == [job["id"]]
    # and the report lists every row, in file order, in UTF-8 with a BOM; a formula is never run by Excel
    report = client.get(f"/api/imports/{job['id']}/report.csv", headers=admin)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    assert report.content.startswith(b"\xef\xbb\xbf")
    lines = report.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "row,external_id,name,status,code,reason,person_id"
    rows = [line.split(",")[:5] for line in lines[1:]]
    assert [r[:2] + r[3:5] for r in rows] == [["2", "E1", "created", ""], ["3", "E2", "created", ""],
                                              ["4", "E3", "failed", "blurred"], ["5", "E4", "failed",
                                                                                  "unknown_branch"]]
    assert lines[1].split(",")[2] == "奥巴马" and "'=HYPERLINK" in lines[4]


def test_an_enrollers_rows_outside_their_scope_fail_and_jobs_are_private(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: Callable[[str], bytes]) -> None:
    sh = add_branch(console_ctx, "SH001", region="east")
    add_branch(console_ctx, "BJ001", region="north")
    enroller = _bearer(console_ctx, "zhang", "enroller", scope_kind="branches", branch_ids=(sh,))
    other = _bearer(console_ctx, "li", "enroller")
    admin = _bearer(console_ctx, "boss", "admin")
    compliance = _bearer(console_ctx, "wang", "compliance")
    photos = zip_bytes({"obama.jpg": photo_bytes("obama.jpg")})
    data = csv_bytes(f"E1,奥巴马,vip,gold,BJ001,,,obama.jpg,,{CONSENT}",
                     f"E2,奥巴马,vip,gold,SH001,branches:SH001;BJ001,,missing.jpg,,{CONSENT}")
    job = _upload(client, enroller, data, photos).json()
    jobs, _text = _events(client, enroller, job["id"])
    assert (jobs[-1]["status"], jobs[-1]["failed"]) == ("done", 2)
    lines = client.get(f"/api/imports/{job['id']}/report.csv", headers=enroller).content.decode("utf-8-sig")
    first = lines.splitlines()[1]
    assert ",failed,forbidden," in first and "outside your scope" in first
    # a job is its creator's and the admins'; another enroller does not learn it exists; compliance cannot import
    assert client.get(f"/api/imports/{job['id']}", headers=other).status_code == 404
    assert client.get(f"/api/imports/{job['id']}/events", headers=other).status_code == 404
    assert client.get(f"/api/imports/{job['id']}/report.csv", headers=other).status_code == 404
    assert client.get("/api/imports", headers=other).json() == []
    assert client.get(f"/api/imports/{job['id']}", headers=admin).json()["id"] == job["id"]
    assert _upload(client, compliance, data, photos).status_code == 403
    assert client.get("/api/imports").status_code == 401


def test_a_bad_file_is_refused_and_makes_no_job(console_ctx: ConsoleContext, client: TestClient) -> None:
    add_branch(console_ctx, "SH001")
    admin = _bearer(console_ctx, "boss", "admin")
    good_csv = csv_bytes(f"E1,某人,vip,gold,SH001,,,a.jpg,,{CONSENT}")
    cases = [
        (good_csv, zip_bytes({"a.jpg": b"x", "../evil.jpg": b"x"}), "bad_zip", "../evil.jpg"),
        (good_csv, zip_bytes({"a.jpg": b"\0" * (8 * 1024 * 1024)}), "bad_zip", "zip bomb"),
        (good_csv, b"not a zip", "bad_zip", "not a valid zip"),
        (b"external_id,name,colour\r\nE1,x,red\r\n", zip_bytes({"a.jpg": b"x"}), "bad_csv", "colour"),
    ]
    for data, photos, code, says in cases:
        answer = _upload(client, admin, data, photos)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == code and says in answer.json()["detail"]
    assert client.get("/api/imports", headers=admin).json() == []
    assert list((console_ctx.config.data_dir / "imports").glob("*")) == []  # no upload left behind


def test_closing_the_console_stops_a_running_import_and_marks_it_resumable(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: Callable[[str], bytes]) -> None:
    add_branch(console_ctx, "SH001")
    admin = _bearer(console_ctx, "boss", "admin")
    data = csv_bytes(f"E1,奥巴马,vip,gold,SH001,,,obama.jpg,,{CONSENT}",
                     *[f"X{i},某人,vip,gold,NOPE,,,obama.jpg,,{CONSENT}" for i in range(10)])
    job = _upload(client, admin, data, zip_bytes({"obama.jpg": photo_bytes("obama.jpg")})).json()
    # when the console shuts down while the first row's face is being checked
    console_ctx.close()
    # then the rows already handed out (if any) finish, the rest are left, and the job says it stopped
    stopped = client.get(f"/api/imports/{job['id']}", headers=admin).json()
    assert stopped["status"] == "interrupted" and "stopped" in stopped["error"] and stopped["resumable"]
    assert stopped["done"] < stopped["total"] == 11  # none, or the few already handed out
    # its upload is kept for a resume, encrypted: the CSV's names and the photo are nowhere on disk in plain
    kept = sorted((console_ctx.config.data_dir / "imports").glob("*"))
    assert [p.name for p in kept] == [f"{job['id']}.csv.sealed", f"{job['id']}.zip.sealed"]
    assert not any("奥巴马".encode() in p.read_bytes() or b"obama.jpg" in p.read_bytes() for p in kept)
    # when the user gives it up, it is abandoned and its upload deleted; it cannot be resumed any more
    gone = client.post(f"/api/imports/{job['id']}/abandon", headers=admin)
    assert gone.status_code == 200 and gone.json()["status"] == "abandoned"
    assert list((console_ctx.config.data_dir / "imports").glob("*")) == []
    again = client.post(f"/api/imports/{job['id']}/resume", headers=admin)
    assert again.status_code == 409 and again.json()["error"] == "job_busy"


def test_an_interrupted_upload_resumes_from_its_sealed_files_and_each_row_goes_in_once(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: Callable[[str], bytes]) -> None:
    from sqlalchemy import func, select

    from console.importer.service import runner_of
    from console.tables import ImportJobRow, Person

    add_branch(console_ctx, "SH001")
    admin = _bearer(console_ctx, "boss", "admin")
    data = csv_bytes(f"E1,奥巴马,vip,gold,SH001,,,obama.jpg,,{CONSENT}",
                     *[f"X{i},某人,vip,gold,NOPE,,,obama.jpg,,{CONSENT}" for i in range(6)],
                     f"E2,拜登,vip,gold,SH001,,,biden.jpg,,{CONSENT}")
    job = _upload(client, admin, data, zip_bytes({"obama.jpg": photo_bytes("obama.jpg"),
                                                  "biden.jpg": photo_bytes("biden.jpg")})).json()
    runner_of(console_ctx).close()  # the console stops the job after the rows in flight
    stopped = client.get(f"/api/imports/{job['id']}", headers=admin).json()
    assert stopped["status"] == "interrupted" and stopped["done"] < stopped["total"] == 8
    # when it is resumed, it runs again at once; a second resume of the running job is refused
    resumed = client.post(f"/api/imports/{job['id']}/resume", headers=admin)
    assert resumed.status_code == 202 and resumed.json()["status"] == "running"
    assert client.post(f"/api/imports/{job['id']}/resume", headers=admin).json()["error"] == "job_busy"
    # then the rows not yet done go in, and every row is in the job once
    events, _text = _events(client, admin, job["id"])
    final = events[-1]
    assert (final["status"], final["done"], final["ok"], final["failed"]) == ("done", 8, 2, 6)
    assert runner_of(console_ctx).join(job["id"], timeout=30)
    with console_ctx.db.transaction() as session:
        lines = session.scalars(select(ImportJobRow.line).where(ImportJobRow.job_id == job["id"])).all()
        assert sorted(lines) == list(range(2, 10))
        assert session.scalar(select(func.count()).select_from(Person)) == 2
    report = client.get(f"/api/imports/{job['id']}/report.csv", headers=admin).content.decode("utf-8-sig")
    assert [line.split(",")[0] for line in report.splitlines()[1:]] == [str(n) for n in range(2, 10)]
    # the job is done: its sealed upload is deleted
    assert list((console_ctx.config.data_dir / "imports").glob("*")) == []
