"""Bulk import: the CSV and zip checks (no database), and whole imports on both backends with real photos and
the real dlib engine pool, run in-process as the CLI runs them."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from sqlalchemy import func, select

from console.context import ConsoleContext
from console.errors import ConsoleError
from console.importer.csvfile import COLUMNS, MAX_ROWS, ImportRow, RowProblem, parse_csv
from console.importer.jobs import RowOutcome
from console.importer.photos import FolderPhotos, PhotoLimits, PhotoMissing, ZipPhotos
from console.importer.service import run_in_foreground
from console.security import Principal, principal_for
from console.tables import AuditRow, GalleryChange, ImportJob, Person, User
from tests.console.conftest import add_branch, add_user

HEADER = ("external_id,name,role,tier,home_branch,scope,plates,photos,notes,consent_purpose,consent_date,"
          "consent_operator")
CONSENT = "VIP迎宾,2026-01-05,李四"


def csv_bytes(*lines: str, header: str = HEADER, bom: bool = False) -> bytes:
    return (("\ufeff" if bom else "") + "\r\n".join((header, *lines)) + "\r\n").encode("utf-8")


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def blurred(data: bytes) -> bytes:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    ok, encoded = cv2.imencode(".jpg", cv2.GaussianBlur(image, (0, 0), 6))
    assert ok
    return bytes(encoded.tobytes())


# -- the CSV, whole and row by row ------------------------------------------------------------------------------

def test_a_csv_with_a_bom_parses_and_each_row_is_checked_on_its_own() -> None:
    parsed = parse_csv(csv_bytes(
        f"E1, 张三 ,VIP,gold,sh001,branches:SH001；SH002,沪A12345; 沪B54321,a.jpg;b.jpg,note,{CONSENT}",
        f"E2,,vip,gold,SH001,,,a.jpg,,{CONSENT}",
        f"E3,王五,boss,,SH001,,,a.jpg,,{CONSENT}",
        f"E4,赵六,vip,gold,SH001,everywhere,,a.jpg,,{CONSENT}",
        f"E1,又一个张三,vip,gold,SH001,,,a.jpg,,{CONSENT}",
        "E5,钱七,vip,gold,SH001,,,a.jpg,,VIP迎宾,05/01/2026,李四",
        f"E6,孙八,vip,gold,SH001,,,1.jpg;2.jpg;3.jpg;4.jpg;5.jpg;6.jpg,,{CONSENT}",
        "E7,周九,vip,gold,SH001,,,a.jpg,,VIP迎宾,,李四",
        ",无编号,vip,gold,SH001,,,a.jpg,,",
        "", bom=True))
    first = parsed.rows[0]
    assert isinstance(first, ImportRow)
    assert (first.line, first.name, first.role, first.home_branch) == (2, "张三", "vip", "sh001")
    assert first.scope is not None and first.scope.branches == ("SH001", "SH002")
    assert first.plates == ("沪A12345", "沪B54321") and first.photos == ("a.jpg", "b.jpg")
    assert first.consent is not None and first.consent.given_on.isoformat() == "2026-01-05"
    problems = {p.external_id: (p.line, p.code) for p in parsed.rows if isinstance(p, RowProblem)}
    assert problems == {"E2": (3, "missing_field"), "E3": (4, "invalid_role"), "E4": (5, "invalid_scope"),
                        "E1": (6, "duplicate_row"), "E5": (7, "invalid_date"), "E6": (8, "too_many_photos"),
                        "E7": (9, "no_consent"), "": (10, "missing_field")}
    assert parsed.total == 9  # the blank line is no row


@pytest.mark.parametrize(("data", "says"), [
    (b"", "empty"),
    (b"external_id,name,colour\r\nE1,x,red\r\n", "unknown columns: 'colour'"),
    (b"name,role\r\nx,vip\r\n", "required columns missing: external_id"),
    (b"external_id,name,name\r\n", "columns given twice: name"),
    ("external_id,name\r\nE1,张三\r\n".encode("gbk"), "not UTF-8"),
    (b"external_id\r\n" + b"E\r\n" * (MAX_ROWS + 1), f"more than {MAX_ROWS} rows"),
])
def test_a_bad_csv_file_is_refused_whole(data: bytes, says: str) -> None:
    with pytest.raises(ConsoleError) as caught:
        parse_csv(data)
    assert caught.value.code == "bad_csv"
    assert says in caught.value.message
    if says.startswith(("unknown", "required")):
        assert caught.value.extra["known_columns"] == list(COLUMNS)


# -- the zip and the folder -------------------------------------------------------------------------------------

SMALL = PhotoLimits(max_entries=5, max_entry_bytes=1024 * 1024)


@pytest.mark.parametrize(("files", "limits", "says"), [
    ({"ok.jpg": b"x", "../evil.jpg": b"x"}, PhotoLimits(), "unsafe name '../evil.jpg'"),
    ({"a\\..\\..\\evil.jpg": b"x"}, PhotoLimits(), "climbs out"),
    ({"/etc/passwd": b"x"}, PhotoLimits(), "an absolute name"),
    ({"C:/evil.jpg": b"x"}, PhotoLimits(), "an absolute name"),
    ({"bomb.jpg": b"\0" * (5 * 1024 * 1024)}, PhotoLimits(), "zip bomb"),
    ({"big.jpg": os.urandom(2 * 1024 * 1024)}, SMALL, "the limit is 1048576"),
    ({f"{i}.jpg": b"x" for i in range(6)}, SMALL, "holds 6 entries"),
    ({"sub/a.jpg": b"x", "sub\\a.jpg": b"y"}, PhotoLimits(), "holds 'sub/a.jpg' twice"),
])
def test_an_unsafe_zip_is_refused_before_any_job(files: dict[str, bytes], limits: PhotoLimits, says: str) -> None:
    with pytest.raises(ConsoleError) as caught:
        ZipPhotos(io.BytesIO(zip_bytes(files)), limits)
    assert caught.value.code == "bad_zip"
    assert says in caught.value.message


def test_an_upload_is_sealed_as_it_is_copied_and_one_larger_than_the_limit_leaves_nothing(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes]) -> None:
    from console.importer import sealed

    data = zip_bytes({"obama.jpg": photo_bytes("obama.jpg")})
    path = sealed.seal_stream(console_ctx, io.BytesIO(data), len(data))
    stored = path.read_bytes()
    # the photo's bytes are nowhere in the file on disk, which is private to the console's user
    assert photo_bytes("obama.jpg")[1000:1064] not in stored and b"obama.jpg" not in stored
    assert path.stat().st_mode & 0o077 == 0
    photos = sealed.open_zip(console_ctx, path, PhotoLimits())
    assert photos.read("obama.jpg").data == photo_bytes("obama.jpg")
    photos.close()
    with pytest.raises(ConsoleError, match=f"larger than {len(data) - 1} bytes"):
        sealed.seal_stream(console_ctx, io.BytesIO(data), len(data) - 1)
    assert sorted(p.name for p in sealed.upload_folder(console_ctx).iterdir()) == [path.name]


def test_a_file_that_is_not_a_zip_is_refused() -> None:
    with pytest.raises(ConsoleError, match="not a valid zip"):
        ZipPhotos(io.BytesIO(b"PK\x03\x04 but nothing else"))


def test_zip_names_match_case_sensitively_after_backslashes_become_slashes() -> None:
    photos = ZipPhotos(io.BytesIO(zip_bytes({"people\\Zhang.jpg": b"zhang", "people/li.jpg": b"li"})))
    assert photos.read("people/Zhang.jpg").data == b"zhang"
    assert photos.read("people\\li.jpg").data == b"li"
    assert photos.read("li.jpg").data == b"li"  # every entry sits under one folder: it is looked up there too
    with pytest.raises(PhotoMissing, match="case-sensitive"):
        photos.read("people/zhang.jpg")


def test_a_folder_never_serves_a_file_outside_it(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    (tmp_path / "photos" / "a.jpg").write_bytes(b"a")
    (tmp_path / "photos" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    photos = FolderPhotos(tmp_path / "photos")
    assert photos.read("a.jpg").data == b"a"
    for name in ("../secret.jpg", "link.jpg", str(tmp_path / "secret.jpg"), "A.jpg"):
        with pytest.raises(PhotoMissing):
            photos.read(name)


# -- whole imports on both backends, with real photos -----------------------------------------------------------

def _admin(ctx: ConsoleContext, name: str = "admin") -> Principal:
    """An admin to import as; the test's engine pool is fetched here, on the test's thread (the import's two
    workers would otherwise both ask pytest for the session fixture at once)."""
    ctx.engine()
    user_id = add_user(ctx, name, "admin")
    with ctx.db.transaction() as session:
        return principal_for(session, session.get_one(User, user_id), "session")


def _run(ctx: ConsoleContext, caller: Principal, data: bytes, photos: dict[str, bytes]) -> list[RowOutcome]:
    source = ZipPhotos(io.BytesIO(zip_bytes(photos)))
    try:
        return run_in_foreground(ctx, caller, "people.csv", parse_csv(data), source)[1]
    finally:
        source.close()


def _changes(ctx: ConsoleContext) -> int:
    with ctx.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(GalleryChange)) or 0)


def test_good_rows_go_in_bad_rows_are_reported_a_rerun_changes_nothing_and_a_changed_tier_updates_one(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes]) -> None:
    add_branch(console_ctx, "SH001", region="east")
    add_branch(console_ctx, "BJ001", region="north")
    admin = _admin(console_ctx)
    photos = {"obama.jpg": photo_bytes("obama.jpg"), "sub\\biden.jpg": photo_bytes("biden.jpg"),
              "obama2.jpg": photo_bytes("obama2.jpg"), "blurred.jpg": blurred(photo_bytes("biden.jpg"))}
    # given Obama is enrolled with a plate
    first = _run(console_ctx, admin, csv_bytes(f"E1,奥巴马,vip,gold,SH001,all,沪A12345,obama.jpg,,{CONSENT}"),
                 photos)
    assert [(o.status, o.code) for o in first] == [("created", "")]
    file = csv_bytes(
        f"E2,拜登,vip,silver,BJ001,region:north,京B12345,sub/biden.jpg,老客户,{CONSENT}",
        f"E3,,vip,gold,SH001,,,obama.jpg,,{CONSENT}",
        f"E4,某人,vip,gold,XX999,,,obama.jpg,,{CONSENT}",
        f"E5,某人,vip,gold,SH001,somewhere,,obama.jpg,,{CONSENT}",
        f"E6,某人,vip,gold,SH001,,ABC,obama.jpg,,{CONSENT}",
        f"E7,某人,vip,gold,SH001,,,missing.jpg,,{CONSENT}",
        f"E8,某人,vip,gold,SH001,,,blurred.jpg,,{CONSENT}",
        f"E9,奥巴马二号,vip,gold,SH001,,,obama2.jpg,,{CONSENT}",
        f"E10,某人,vip,gold,SH001,,沪A12345,sub/biden.jpg,,{CONSENT}",
        f"E2,拜登又一次,vip,gold,BJ001,,,sub/biden.jpg,,{CONSENT}",
        f"E1,奥巴马,vip,gold,SH001,all,沪A12345,obama.jpg,,{CONSENT}")
    # when a file with one new person, one known person and bad rows of every kind is imported
    report = _run(console_ctx, admin, file, photos)
    # then the good row is created, the known one unchanged, and each bad row says why, in file order
    assert [(o.row, o.external_id, o.status, o.code) for o in report] == [
        (2, "E2", "created", ""), (3, "E3", "failed", "missing_field"), (4, "E4", "failed", "unknown_branch"),
        (5, "E5", "failed", "invalid_scope"), (6, "E6", "failed", "invalid_plate"),
        (7, "E7", "failed", "photo_missing"), (8, "E8", "failed", "blurred"), (9, "E9", "failed", "duplicate"),
        (10, "E10", "failed", "plate_taken"), (11, "E2", "failed", "duplicate_row"), (12, "E1", "unchanged", "")]
    assert all(o.reason for o in report if o.status == "failed")
    assert "blurred.jpg" in report[6].reason and "missing.jpg" in report[5].reason
    with console_ctx.db.transaction() as session:
        biden = session.scalars(select(Person).where(Person.external_id == "E2")).one()
        assert (biden.name, biden.tier, biden.scope_kind, biden.scope_region, biden.notes) == (
            "拜登", "silver", "region", "north", "老客户")
        assert [p.plate for p in biden.plates] == ["京B12345"] and len(biden.photos) == 1
        assert len(biden.consents) == 1
        assert session.scalar(select(func.count()).select_from(Person)) == 2
        job = session.scalars(select(ImportJob).order_by(ImportJob.created_at.desc())).first()
        assert job is not None
        assert (job.status, job.total, job.done, job.ok, job.unchanged, job.failed) == ("done", 11, 11, 1, 1, 9)
        assert len(job.report) == 11
    # when the same file is imported again, nothing changes: no new gallery change, no new person
    changes = _changes(console_ctx)
    again = _run(console_ctx, admin, file, photos)
    assert [(o.status, o.code) for o in again] == [("unchanged", "")] + [(o.status, o.code) for o in report[1:]]
    assert _changes(console_ctx) == changes
    # when Biden's tier changes, only his row is updated
    changed = _run(console_ctx, admin, file.replace("拜登,vip,silver".encode(), "拜登,vip,platinum".encode()),
                   photos)
    assert [(o.external_id, o.status) for o in changed if o.status != "failed"] == [("E2", "updated"),
                                                                                    ("E1", "unchanged")]
    assert changed[0].reason == "tier"
    with console_ctx.db.transaction() as session:
        assert session.scalars(select(Person.tier).where(Person.external_id == "E2")).one() == "platinum"
        actions = session.scalars(select(AuditRow.action).where(AuditRow.action.like("import_%"))).all()
    assert sorted(set(actions)) == ["import_create", "import_done", "import_start", "import_update"]
    assert actions.count("import_create") == 2 and actions.count("import_update") == 1
    assert actions.count("import_start") == actions.count("import_done") == 4


def test_staff_rows_rerun_unchanged_and_changed_photos_plates_scope_and_consent_update_a_person(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes]) -> None:
    add_branch(console_ctx, "SH001")
    admin = _admin(console_ctx)
    photos = {"o1.jpg": photo_bytes("obama.jpg"), "o2.jpg": photo_bytes("obama2.jpg"),
              "biden.jpg": photo_bytes("biden.jpg")}
    header = "external_id,name,role,tier,home_branch,scope,photos,notes,consent_purpose,consent_date,consent_operator"
    first = csv_bytes(f"E1,奥巴马,vip,gold,SH001,,o1.jpg,,{CONSENT}",
                      f"E2,拜登,staff,,SH001,all,biden.jpg,\u200b 常驻  大堂 ,{CONSENT}", header=header)
    created = _run(console_ctx, admin, first, photos)
    assert [o.status for o in created] == ["created", "created"]
    with console_ctx.db.transaction() as session:
        staff = session.scalars(select(Person).where(Person.external_id == "E2")).one()
        assert (staff.tier, staff.scope_kind, [b.code for b in staff.scope_branches]) == ("staff", "branches",
                                                                                         ["SH001"])
    # a staff row's empty tier and forced scope, and notes the service cleans, compare equal on a re-run
    assert [o.status for o in _run(console_ctx, admin, first, photos)] == ["unchanged", "unchanged"]
    # a file without the name or consent columns keeps them; a new photo list replaces the photos
    updated = _run(console_ctx, admin, csv_bytes("E1,o2.jpg", header="external_id,photos"), photos)
    assert [(o.status, o.reason) for o in updated] == [("updated", "photos")]
    with console_ctx.db.transaction() as session:
        person = session.scalars(select(Person).where(Person.external_id == "E1")).one()
        assert person.name == "奥巴马" and len(person.photos) == 1 and len(person.consents) == 1
    assert [o.status for o in _run(console_ctx, admin, csv_bytes("E1,o2.jpg", header="external_id,photos"),
                                   photos)] == ["unchanged"]
    # plates, scope and a new consent, without any photo work
    header = "external_id,plates,scope,consent_purpose,consent_date,consent_operator"
    changes = _changes(console_ctx)
    report = _run(console_ctx, admin, csv_bytes("E1,沪A11111;沪B22222,region:east,VIP迎宾,2026-02-01,王五",
                                                header=header), photos)
    assert [(o.status, o.reason) for o in report] == [("updated", "scope, plates, consent")]
    assert _changes(console_ctx) > changes
    report = _run(console_ctx, admin, csv_bytes("E1,沪B22222,region:east,,,", header=header), photos)
    assert [(o.status, o.reason) for o in report] == [("updated", "plates")]
    with console_ctx.db.transaction() as session:
        person = session.scalars(select(Person).where(Person.external_id == "E1")).one()
        assert [p.plate for p in person.plates] == ["沪B22222"]
        assert (person.scope_kind, person.scope_region, len(person.consents)) == ("region", "east", 2)
    # a photo of someone else is refused by the service, and the row's other changes are not applied
    report = _run(console_ctx, admin, csv_bytes("E1,新名字,biden.jpg", header="external_id,name,photos"), photos)
    assert report[0].status == "failed" and report[0].code in ("not_same_person", "duplicate")
    assert report[0].reason.startswith("biden.jpg: ")
    with console_ctx.db.transaction() as session:
        person = session.scalars(select(Person).where(Person.external_id == "E1")).one()
        assert person.name == "奥巴马" and len(person.photos) == 1


def test_the_cli_imports_a_folder_prints_the_summary_and_writes_the_report(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from console.cli.main import main

    add_branch(console_ctx, "SH001")
    add_user(console_ctx, "importer", "enroller")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "obama.jpg").write_bytes(photo_bytes("obama.jpg"))
    (tmp_path / "people.csv").write_bytes(csv_bytes(f"E1,奥巴马,vip,gold,SH001,,,obama.jpg,,{CONSENT}",
                                                    f"E2,某人,vip,gold,SH001,,,nobody.jpg,,{CONSENT}", bom=True))
    config = tmp_path / "console.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(console_ctx.config.data_dir),
                                      "database": {"url": console_ctx.config.database_url}}))
    args = ["import", "--config", str(config), "--csv", str(tmp_path / "people.csv"), "--photos", str(folder),
            "--user", "importer", "--report", str(tmp_path / "report.csv")]
    assert main(args) == 1  # one row failed
    out = capsys.readouterr().out
    assert "新建 1，更新 0，未变 0，失败 1" in out
    assert "created 1, updated 0, unchanged 0, failed 1" in out
    assert out.index("新建") < out.index("created")
    report = (tmp_path / "report.csv").read_bytes()
    assert report.startswith(b"\xef\xbb\xbf")
    lines = report.decode("utf-8-sig").splitlines()
    assert lines[0] == "row,external_id,name,status,code,reason,person_id"
    assert lines[1].startswith("2,E1,奥巴马,created,,,") and lines[2].startswith("3,E2,某人,failed,photo_missing,")
    assert main(args) == 1 and "新建 0，更新 0，未变 1，失败 1" in capsys.readouterr().out
    # a bad file imports nothing: exit code 2
    (tmp_path / "bad.csv").write_text("external_id,colour\nE1,red\n", encoding="utf-8")
    assert main([*args[:4], str(tmp_path / "bad.csv"), *args[5:]]) == 2
    assert "colour" in capsys.readouterr().err


def test_two_rows_with_one_face_enrol_the_first_even_when_the_second_is_checked_sooner(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes]) -> None:
    add_branch(console_ctx, "SH001")
    admin = _admin(console_ctx)
    # obama3.jpg (2.3 MP) takes the engine about three times as long as obama.jpg: the rows' checks overlap
    photos = {"slow.jpg": photo_bytes("obama3.jpg"), "fast.jpg": photo_bytes("obama.jpg")}
    report = _run(console_ctx, admin, csv_bytes(f"E1,奥巴马,vip,gold,SH001,,,slow.jpg,,{CONSENT}",
                                                f"E2,奥巴马又一次,vip,gold,SH001,,,fast.jpg,,{CONSENT}"), photos)
    assert [(o.external_id, o.status, o.code) for o in report] == [("E1", "created", ""),
                                                                   ("E2", "failed", "duplicate")]
    assert "奥巴马" in report[1].reason


def test_a_stopped_job_keeps_its_finished_rows_and_the_same_file_resumes_it(
        console_ctx: ConsoleContext, photo_bytes: Callable[[str], bytes]) -> None:
    from console.importer.jobs import JobRun
    from console.importer.rows import RowImporter
    from console.importer.service import create_job

    add_branch(console_ctx, "SH001")
    admin = _admin(console_ctx)
    photos = ZipPhotos(io.BytesIO(zip_bytes({"obama.jpg": photo_bytes("obama.jpg"),
                                             "biden.jpg": photo_bytes("biden.jpg")})))
    data = csv_bytes(f"E1,奥巴马,vip,gold,SH001,,,obama.jpg,,{CONSENT}",
                     *[f"X{i},某人,vip,gold,NOPE,,,obama.jpg,,{CONSENT}" for i in range(6)],
                     f"E2,拜登,vip,gold,SH001,,,biden.jpg,,{CONSENT}")
    parsed = parse_csv(data)
    job_id = str(create_job(console_ctx, admin, "people.csv", parsed)["id"])
    run = JobRun(console_ctx, job_id, admin, RowImporter(console_ctx, admin, photos),
                 on_row=lambda _outcome: run.stop.set())
    # when the console stops the job after its first row (the rows already handed out still finish)
    stopped = run.run(parsed)
    with console_ctx.db.transaction() as session:
        job = session.get_one(ImportJob, job_id)
        assert (job.status, job.done, job.ok, job.failed) == ("interrupted", len(stopped), 1, len(stopped) - 1)
        assert job.error is not None and "stopped" in job.error and len(job.report) == len(stopped)
        assert job.runner is None
    assert 1 < len(stopped) < parsed.total  # Biden's row, the last, was never started
    # then resuming the job skips the finished rows and goes on with the rest; the report is the whole job's
    again = run_in_foreground(console_ctx, admin, "people.csv", parsed, photos, resume=job_id)[1]
    assert [(o.external_id, o.status) for o in again if o.status != "failed"] == [("E1", "created"),
                                                                                  ("E2", "created")]
    assert [o.row for o in again] == [r.line for r in parsed.rows]
    with console_ctx.db.transaction() as session:
        job = session.get_one(ImportJob, job_id)
        assert (job.status, job.done, job.ok, job.failed) == ("done", parsed.total, 2, parsed.total - 2)
        assert len(job.report) == parsed.total
    # a resume of another file, or of a job that is done, is refused
    with pytest.raises(ConsoleError, match="only a queued or interrupted job"):
        run_in_foreground(console_ctx, admin, "people.csv", parsed, photos, resume=job_id)
    with pytest.raises(ConsoleError, match="another CSV"):
        run_in_foreground(console_ctx, admin, "people.csv", parse_csv(data + b"\r\n" + b"X9"), photos, resume=job_id)
    photos.close()
