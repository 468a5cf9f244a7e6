"""Sign-in and enrolment in a real chromium: the live photo check, a refused blurred photo, a duplicate face."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest

from tests.console.browser.conftest import Console, Watch, sign_in
from vision.imageio import decode_image

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e .[dev])")
from playwright.sync_api import Page, expect


def blurred_copy(photos_dir: Path, name: str, out: Path) -> Path:
    """A real photo made blurred (a strong Gaussian blur): the face is still found but its sharpness fails."""
    image = decode_image((photos_dir / name).read_bytes())
    cv2.imwrite(str(out), cv2.GaussianBlur(image, (0, 0), 6))
    return out


def fill_enrol_form(page: Page, name: str, photo: Path, *, plates: str = "") -> None:
    page.goto("/enrol")
    page.wait_for_selector("#home-branch option[value='SH001']", state="attached")
    page.fill("input[name=name]", name)
    page.select_option("select[name=role]", "vip")
    page.fill("input[name=tier]", "platinum")
    page.select_option("#home-branch", "SH001")
    if plates:
        page.fill("input[name=plates]", plates)
    page.set_input_files("#photo", str(photo))


def test_sign_in_switch_language_and_enrol_a_vip_from_a_real_photo(page: Page, console: Console, watch: Watch,
                                                                      photos_dir: Path) -> None:
    # a link that would send the browser elsewhere after sign-in is not followed
    page.goto("/login?next=%2F%2Fexample.com%2Fphish")
    page.fill("#username", "admin")
    page.fill("#password", "wrong password!")
    watch.expect(401, r"^/api/auth/login$")
    page.click("#submit")
    expect(page.locator("#notice")).to_have_text("用户名或密码错误")
    page.fill("#password", "correct horse battery staple")
    page.click("#submit")
    page.wait_for_url(re.compile(r"/persons$"))
    expect(page.locator("#me")).to_have_text("管理员 · 管理员")

    page.goto("/enrol")
    expect(page.locator("h1.page")).to_have_text("登记人员")
    # the English option, kept across pages (localStorage), and back
    page.click("#lang")
    expect(page.locator("h1.page")).to_have_text("Enrol a person")
    page.goto("/persons")
    expect(page.locator("h1.page")).to_have_text("Enrolled persons")
    page.click("#lang")
    expect(page.locator("h1.page")).to_have_text("已登记人员")

    fill_enrol_form(page, "奥巴马", photos_dir / "obama.jpg", plates="沪A12345")
    page.set_input_files("#more-photos", [str(photos_dir / "obama2.jpg"), str(photos_dir / "obama3.jpg")])
    feedback = page.locator("#feedback")
    expect(feedback).to_have_attribute("data-state", "ok")
    expect(feedback).to_contain_text(re.compile(r"照片可用：人脸 \d+ px，清晰度 [\d.]+"))
    expect(page.locator("#duplicate")).to_be_hidden()
    page.check("#consent-visit-template")  # the consent also covers template improvement from live visits
    page.click("#submit")
    expect(page.locator("#notice")).to_have_text("已登记 奥巴马")

    page.click("#result-link")
    page.wait_for_url(re.compile(r"/persons/[A-Za-z0-9_-]+$"))
    expect(page.locator("#name")).to_have_text("奥巴马")
    expect(page.locator("#home-branch")).to_contain_text("SH001")
    expect(page.locator("#plates li[data-plate]")).to_have_count(1)
    marks = page.locator("#photos figure .marks")
    expect(marks).to_have_count(3)
    for i in range(3):
        expect(marks.nth(i)).to_contain_text(re.compile(r"人脸 \d+ px · 清晰度 [\d.]+ · 偏转 -?[\d.]+"))
    # the thumbnails are served to the page (an image that failed has naturalWidth 0, and this times out)
    page.wait_for_function("() => [...document.querySelectorAll('#photos img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    expect(page.locator("#history tbody")).to_contain_text("登记")
    expect(page.locator("#consents tbody tr")).to_have_count(1)
    expect(page.locator("#consents tbody tr")).to_contain_text("含：现场照片改进模板")

    # and it is in the list, with its thumbnail
    page.goto("/persons")
    row = page.locator("#persons tbody tr.link")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("奥巴马")
    expect(row.locator("img.thumb")).to_have_count(1)
    page.fill("input[name=q]", "不存在的人")
    page.click("button[type=submit]")
    expect(page.locator("#status")).to_have_text("没有符合条件的人员")


def test_a_blurred_photo_is_refused_with_the_reason_on_screen(page: Page, console: Console, watch: Watch,
                                                             photos_dir: Path, tmp_path: Path) -> None:
    sign_in(page, start="/enrol")
    blurred = blurred_copy(photos_dir, "obama.jpg", tmp_path / "blurred.jpg")
    fill_enrol_form(page, "模糊照片", blurred)
    feedback = page.locator("#feedback")
    expect(feedback).to_have_attribute("data-state", "bad")
    expect(feedback).to_contain_text("照片不可用：照片模糊")

    watch.expect(422, r"^/api/persons$")
    page.click("#submit")
    expect(page.locator("#notice")).to_have_text("照片模糊")
    # nothing was written
    listed = page.request.get("/api/persons").json()
    assert listed["total"] == 0


def test_the_same_face_under_another_name_shows_the_match(page: Page, console: Console, watch: Watch,
                                                           photos_dir: Path,
                                                           photo_bytes: Callable[[str], bytes]) -> None:
    sign_in(page, start="/enrol")
    fill_enrol_form(page, "奥巴马", photos_dir / "obama.jpg")
    expect(page.locator("#feedback")).to_have_attribute("data-state", "ok")
    page.click("#submit")
    expect(page.locator("#notice")).to_have_text("已登记 奥巴马")

    fill_enrol_form(page, "欧阳明", photos_dir / "obama2.jpg")
    # the live check already warns before anything is sent
    duplicate = page.locator("#duplicate")
    expect(duplicate).to_be_visible()
    warning = r"可能重复：该人脸与已登记的 奥巴马（上海陆家嘴支行）相似，相似度 0\.\d\d"
    expect(duplicate).to_contain_text(re.compile(warning))
    watch.expect(409, r"^/api/persons$")
    page.click("#submit")
    refusal = r"^该人脸已登记为 奥巴马（上海陆家嘴支行，相似度 0\.\d\d）$"
    expect(page.locator("#notice")).to_have_text(re.compile(refusal))
    assert page.request.get("/api/persons").json()["total"] == 1
    # the enroller has compared the photos and says it is another person: enrolled, and audited as such
    expect(page.locator("#confirm-distinct")).to_be_visible()
    page.click("#confirm-distinct")
    expect(page.locator("#notice")).to_have_text("已登记 欧阳明")
    assert page.request.get("/api/persons").json()["total"] == 2
    overrides = page.request.get("/api/audit?action=duplicate_override").json()["items"]
    assert len(overrides) == 1 and overrides[0]["detail"]["score"] >= 0.9
    page.click("#result-link")
    expect(page.locator("#name")).to_have_text("欧阳明")


def test_pages_fit_a_tablet_and_a_signed_out_browser_is_sent_to_sign_in(page: Page, console: Console,
                                                                         watch: Watch) -> None:
    page.set_viewport_size({"width": 1024, "height": 768})
    sign_in(page, start="/persons")
    for lang in ("zh", "en"):
        for path in ("/persons", "/enrol", "/import", "/audit", "/branches"):
            page.goto(path)
            page.wait_for_selector("#me:not(:empty)")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1024, f"{path} ({lang}) scrolls sideways on a 1024 px tablet ({width} px)"
            bar = page.locator("#topbar").bounding_box()
            assert bar and bar["height"] < 64, f"{path} ({lang}): the top bar wraps ({bar})"
        page.click("#lang")  # then the same in English, and back to Chinese
    # a session that ended: the API answers 401 and the page goes to /login, and back after signing in
    page.click("#logout")
    page.wait_for_url(re.compile(r"/login$"))
    page.context.add_cookies([{"name": "sb_console_session", "value": "expired", "url": console.url}])
    watch.expect(401, r"^/api/me$")
    page.goto("/audit?action=erase")
    page.wait_for_url(re.compile(r"/login\?next=%2Faudit%3Faction%3Derase$"))
    page.fill("#username", "admin")
    page.fill("#password", "correct horse battery staple")
    page.click("#submit")
    page.wait_for_url(re.compile(r"/audit\?action=erase$"))
    expect(page.locator("h1.page")).to_have_text("审计日志")
