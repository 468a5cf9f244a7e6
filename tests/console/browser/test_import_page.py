"""Bulk import in a real chromium: 64 real faces from ../shared/data/faces/east_asian plus deliberately bad rows;
the progress bar is fed by the server's event stream and advances, the bad rows are listed with their reasons."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import cv2
import pytest

from tests.console.browser.conftest import Console, Watch, sign_in
from vision.imageio import decode_image

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e .[dev])")
from playwright.sync_api import Page, expect

IDENTITIES = 64
HEADER = ["external_id", "name", "role", "tier", "home_branch", "scope", "plates", "photos", "notes",
          "consent_purpose", "consent_date", "consent_operator"]
CONSENT = ["到店人脸识别与贵宾接待", "2026-11-20", "王经理"]
# external_id -> the message the page shows for the row's refusal
BAD_ROWS = {"BAD-NOPHOTO": "压缩包中找不到照片", "BAD-BRANCH": "没有该网点", "BAD-ROLE": "类型必须是 vip 或 staff",
            "BAD-BLUR": "照片模糊"}


def one_photo_each(faces: Path, count: int) -> list[tuple[str, Path]]:
    """The largest photo of each of the first ``count`` identities (by name), from the folder's manifest."""
    best: dict[str, tuple[int, Path]] = {}
    with (faces / "manifest.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            area = int(row["width"]) * int(row["height"])
            if row["identity"] not in best or area > best[row["identity"]][0]:
                best[row["identity"]] = (area, faces / row["file"])
    return [(name, best[name][1]) for name in sorted(best)[:count]]


def build_upload(faces: Path, obama: bytes, out: Path) -> tuple[Path, Path, int]:
    people = one_photo_each(faces, IDENTITIES)
    assert len(people) == IDENTITIES, f"{faces} holds fewer than {IDENTITIES} identities"
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(HEADER)
    zip_path = out / "photos.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        for i, (name, photo) in enumerate(people, start=1):
            z.write(photo, f"{name}.jpg")
            writer.writerow([f"EA{i:03d}", name, "vip", "gold", "SH001", "", "", f"{name}.jpg", "", *CONSENT])
        image = decode_image(obama)
        z.writestr("blur.jpg", cv2.imencode(".jpg", cv2.GaussianBlur(image, (0, 0), 6))[1].tobytes())
    writer.writerow(["BAD-NOPHOTO", "无照片", "vip", "gold", "SH001", "", "", "missing.jpg", "", *CONSENT])
    writer.writerow(["BAD-BRANCH", "错网点", "vip", "gold", "NOPE", "", "", f"{people[0][0]}.jpg", "", *CONSENT])
    writer.writerow(["BAD-ROLE", "错类型", "boss", "gold", "SH001", "", "", f"{people[1][0]}.jpg", "", *CONSENT])
    writer.writerow(["BAD-BLUR", "模糊", "vip", "gold", "SH001", "", "", "blur.jpg", "", *CONSENT])
    csv_path = out / "people.csv"
    csv_path.write_text(text.getvalue(), encoding="utf-8")
    return csv_path, zip_path, IDENTITIES + len(BAD_ROWS)


def test_bulk_import_shows_live_progress_and_lists_the_bad_rows(page: Page, console: Console, watch: Watch,
                                                                shared_data: Path, photos_dir: Path,
                                                                tmp_path: Path) -> None:
    csv_path, zip_path, total = build_upload(shared_data / "faces" / "east_asian",
                                             (photos_dir / "obama.jpg").read_bytes(), tmp_path)
    sign_in(page, start="/import")
    expect(page.locator("#job")).to_be_hidden()
    # every value the bar shows, as the browser renders it
    page.evaluate("""() => {
        window.__done = [];
        const bar = document.getElementById('progress');
        new MutationObserver(() => window.__done.push([+bar.dataset.done, +bar.dataset.total]))
            .observe(bar, {attributes: true, attributeFilter: ['data-done']});
    }""")
    page.set_input_files("input[name=csv]", str(csv_path))
    page.set_input_files("input[name=photos]", str(zip_path))
    page.click("#start")

    expect(page.locator("#progress")).to_be_visible()
    expect(page.locator("#job-state")).to_have_attribute("data-status", "done", timeout=180_000)
    seen = page.evaluate("window.__done")
    done = [d for d, t in seen if t == total]
    assert done and done[-1] == total, seen
    assert done == sorted(done), f"the bar went backwards: {done}"
    assert any(0 < d < total for d in done), f"the bar jumped to the end without showing progress: {seen}"
    expect(page.locator("#progress-text")).to_have_text(f"{total} / {total}")

    imported = int(page.inner_text("#n-ok"))
    failed = int(page.inner_text("#n-failed"))
    assert imported + failed + int(page.inner_text("#n-unchanged")) == total
    refused = page.inner_text("#bad-rows tbody")
    assert imported >= 50, f"only {imported} of {IDENTITIES} real faces were imported; refused:\n{refused}"

    # the bad rows, with their reasons in Chinese (and the server's detail under each)
    bad = page.locator("#bad-rows tbody tr[data-row]")
    expect(bad).to_have_count(failed)
    for external_id, reason in BAD_ROWS.items():
        row = bad.filter(has_text=external_id)
        expect(row).to_have_count(1)
        expect(row.locator("td").nth(3).locator("b")).to_have_text(reason)

    # the report the link downloads says the same
    href = page.get_attribute("#report", "href")
    assert href and re.fullmatch(r"/api/imports/[\w-]+/report\.csv", href)
    report = list(csv.DictReader(io.StringIO(page.request.get(href).text().lstrip("\ufeff"))))
    assert len(report) == total
    assert {r["external_id"] for r in report if r["status"] == "failed"} >= set(BAD_ROWS)
    assert sum(r["status"] == "created" for r in report) == imported

    # the recent imports list the job, and the persons list pages through what came in
    expect(page.locator("#jobs tbody tr").first).to_contain_text(f"{imported} / {failed} / 0")
    page.goto("/persons")
    expect(page.locator("#range")).to_have_text(f"第 1–50 条，共 {imported} 条")
    expect(page.locator("#persons tbody tr.link")).to_have_count(50)
    page.click("#next")
    expect(page.locator("#persons tbody tr.link")).to_have_count(imported - 50)
    expect(page.locator("#prev")).to_be_enabled()
    page.select_option("select[name=branch]", "BJ001")
    expect(page.locator("#status")).to_have_text("没有符合条件的人员")
    page.select_option("select[name=branch]", "SH001")
    expect(page.locator("#range")).to_have_text(f"第 1–50 条，共 {imported} 条")
    page.select_option("select[name=role]", "staff")
    expect(page.locator("#status")).to_have_text("没有符合条件的人员")
    page.click("#reset")
    created = [r for r in report if r["status"] == "created"]
    page.fill("input[name=q]", created[0]["external_id"])
    page.fill("input[name=tier]", "gold")
    page.click("#filters button[type=submit]")
    expect(page.locator("#persons tbody tr.link")).to_have_count(1)
    expect(page.locator("#persons tbody tr.link")).to_contain_text(created[0]["name"])
    page.reload()  # the filters live in the address, so a reload (or a shared link) keeps them
    expect(page.locator("input[name=q]")).to_have_value(created[0]["external_id"])
    expect(page.locator("#persons tbody tr.link")).to_have_count(1)


def test_an_interrupted_import_shows_its_reason_and_resumes_from_the_page(page: Page, console: Console,
                                                                          watch: Watch, photos_dir: Path,
                                                                          tmp_path: Path) -> None:
    from console.importer.service import runner_of

    obama = decode_image((photos_dir / "obama3.jpg").read_bytes())
    soft = cv2.imencode(".jpg", cv2.GaussianBlur(obama, (0, 0), 6))[1].tobytes()
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(HEADER)
    writer.writerow(["E1", "拜登", "vip", "gold", "SH001", "", "", "biden.jpg", "", *CONSENT])
    for i in range(12):  # slow rows (a 2.3 MP photo each): the console stops while they run
        writer.writerow([f"S{i}", f"模糊{i}", "vip", "gold", "SH001", "", "", "soft.jpg", "", *CONSENT])
    (tmp_path / "people.csv").write_text(text.getvalue(), encoding="utf-8")
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as z:
        z.write(photos_dir / "biden.jpg", "biden.jpg")
        z.writestr("soft.jpg", soft)
    sign_in(page, start="/import")
    page.set_input_files("input[name=csv]", str(tmp_path / "people.csv"))
    page.set_input_files("input[name=photos]", str(tmp_path / "photos.zip"))
    page.click("#start")
    expect(page.locator("#job")).to_be_visible()
    # when the console stops the job midway (as a shutdown does)
    runner_of(console.app.state.ctx).close()
    # then the page says it was interrupted, why, and offers to resume or abandon it
    expect(page.locator("#job-state")).to_have_attribute("data-status", "interrupted", timeout=60_000)
    expect(page.locator("#job-state")).to_have_text("已中断")
    expect(page.locator("#job-error")).to_contain_text("控制台正在关闭")
    expect(page.locator("#resume")).to_be_visible()
    expect(page.locator("#abandon")).to_be_visible()
    # when the user resumes it, the rest of the rows run and the job ends done, each row once
    page.click("#resume")
    expect(page.locator("#job-state")).to_have_attribute("data-status", "done", timeout=120_000)
    expect(page.locator("#progress-text")).to_have_text("13 / 13")
    expect(page.locator("#job-actions")).to_be_hidden()
    expect(page.locator("#n-ok")).to_have_text("1")
    expect(page.locator("#bad-rows tbody tr[data-row]")).to_have_count(12)
