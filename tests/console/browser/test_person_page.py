"""The person page, erasure, the audit view and the branches view in a real chromium."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from console.db import utcnow
from console.tables import Edge
from tests.console.browser.conftest import Console, Watch, csrf_headers, sign_in

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e .[dev])")
from playwright.sync_api import Page, expect


def enrol_by_api(page: Page, name: str, photo: Path, **fields: Any) -> dict[str, Any]:
    """Enrol through the API as the signed-in browser does (session cookie + CSRF header)."""
    form: dict[str, Any] = {"name": name, "role": "vip", "tier": "gold", "home_branch": "SH001",
                            "scope_kind": "branches", "scope_branches": "SH001",
                            "consent_purpose": "到店人脸识别与贵宾接待", "consent_date": "2026-11-20",
                            "consent_operator": "王经理",
                            "photo": {"name": photo.name, "mimeType": "image/jpeg", "buffer": photo.read_bytes()},
                            **fields}
    res = page.request.post("/api/persons", multipart=form, headers=csrf_headers(page))
    assert res.status == 201, res.text()
    person: dict[str, Any] = res.json()
    return person


def test_consent_evidence_opens_and_plates_are_added_and_removed(page: Page, console: Console, watch: Watch,
                                                                  photos_dir: Path) -> None:
    sign_in(page)
    signed = {"name": "授权书.jpg", "mimeType": "image/jpeg", "buffer": (photos_dir / "obama3.jpg").read_bytes()}
    biden = enrol_by_api(page, "拜登", photos_dir / "biden.jpg", external_id="VIP-0001", consent_evidence=signed)
    page.goto(f"/persons/{biden['id']}")
    expect(page.locator("#name")).to_have_text("拜登")
    evidence = page.locator("#consents tbody tr a")
    expect(evidence).to_have_text("授权书.jpg")
    assert page.request.get(evidence.get_attribute("href") or "").body() == signed["buffer"]
    expect(page.locator("#plates")).to_contain_text("没有登记车牌")

    page.fill("#plate-input", "沪A12345")
    page.click("#plate-form button[type=submit]")
    expect(page.locator("#plate-msg")).to_have_text("已添加车牌 沪A12345")
    expect(page.locator("#plates li[data-plate='沪A12345']")).to_have_count(1)

    watch.expect(422, r"/plates$")
    page.fill("#plate-input", "ABC")
    page.click("#plate-form button[type=submit]")
    expect(page.locator("#plate-msg")).to_contain_text("车牌号码无效")

    page.once("dialog", lambda d: d.accept())
    page.click("#plates li[data-plate='沪A12345'] button")
    expect(page.locator("#plate-msg")).to_have_text("已删除车牌 沪A12345")
    expect(page.locator("#plates li[data-plate]")).to_have_count(0)
    history = page.locator("#history tbody")
    expect(history).to_contain_text("删除车牌")
    expect(history).to_contain_text("添加车牌")


def test_erasing_a_person_removes_their_photos_and_the_audit_shows_it(page: Page, console: Console, watch: Watch,
                                                                      photos_dir: Path) -> None:
    sign_in(page)
    obama = enrol_by_api(page, "奥巴马", photos_dir / "obama.jpg", external_id="VIP-0002")
    kept = enrol_by_api(page, "拜登", photos_dir / "biden.jpg")
    page.goto(f"/persons/{obama['id']}")
    expect(page.locator("#photos figure")).to_have_count(1)
    photo_url = obama["photos"][0]["url"]
    assert page.request.get(photo_url).status == 200

    # cancelling the dialog erases nothing
    page.click("#erase")
    dialog = page.locator("#erase-dialog")
    expect(dialog).to_be_visible()
    named = "确定要永久删除「奥巴马」（编号 VIP-0002，上海陆家嘴支行 (SH001)）"
    expect(page.locator("#erase-text")).to_contain_text(named)
    page.click("#erase-cancel")
    expect(dialog).to_be_hidden()
    assert page.request.get(f"/api/persons/{obama['id']}").status == 200

    page.click("#erase")
    page.click("#erase-confirm")
    page.wait_for_url(re.compile(r"/persons$"))
    expect(page.locator("#notice")).to_have_text("已删除 奥巴马 的全部资料")
    expect(page.locator("#persons tbody tr.link")).to_have_count(1)
    expect(page.locator("#persons tbody")).to_contain_text("拜登")

    # every URL of the erased person is gone; the other person is untouched
    assert page.request.get(photo_url).status == 404
    assert page.request.get(photo_url + "?thumb=1").status == 404
    assert page.request.get(f"/api/persons/{obama['id']}").status == 404
    assert page.request.get(kept["photos"][0]["url"]).status == 200
    watch.expect(404, r"^/api/persons/")
    page.goto(f"/persons/{obama['id']}")
    expect(page.locator("#notice")).to_have_text("找不到该记录（可能已被删除）")
    expect(page.locator("#person")).to_be_hidden()

    # the audit view shows the erasure, and its filter finds it
    page.goto("/audit")
    erased = page.locator(f"#audit tbody tr[data-action='erase'][data-object='person:{obama['id']}']")
    expect(erased).to_have_count(1)
    expect(erased).to_contain_text("删除全部资料（被遗忘权）")
    expect(erased).to_contain_text("admin")
    page.wait_for_selector("#action option[value='erase']", state="attached")
    page.select_option("#action", "erase")
    page.wait_for_url(re.compile(r"/audit\?action=erase$"))
    expect(page.locator("#audit tbody tr")).to_have_count(1)
    expect(page.locator("#range")).to_have_text("第 1–1 条，共 1 条")
    # the date range: from today (the browser's calendar day) it is there, up to yesterday it is not
    today = page.evaluate("SB.today()")
    yesterday = page.evaluate("(() => { const d = new Date(); d.setDate(d.getDate() - 1); "
                              "return d.toISOString().slice(0, 10); })()")
    page.fill("input[name=since]", today)
    page.click("#filters button[type=submit]")
    expect(page.locator("#audit tbody tr")).to_have_count(1)
    page.fill("input[name=since]", "")
    page.fill("input[name=until]", yesterday)
    page.click("#filters button[type=submit]")
    expect(page.locator("#status")).to_have_text("没有符合条件的记录")
    page.fill("input[name=until]", "")
    page.fill("input[name=actor]", "nobody")
    page.click("#filters button[type=submit]")
    expect(page.locator("#status")).to_have_text("没有符合条件的记录")


def test_branches_show_their_edges_and_not_yet_synced(page: Page, console: Console, watch: Watch) -> None:
    sign_in(page, start="/branches")
    cards = page.locator("section[data-branch]")
    expect(cards).to_have_count(2)
    expect(page.locator("section[data-branch='SH001']")).to_contain_text("该网点还没有边缘设备")
    res = page.request.post("/api/branches/SH001/edges", data={"name": "lobby-box"}, headers=csrf_headers(page))
    assert res.status == 201, res.text()
    page.reload()
    edge = page.locator("section[data-branch='SH001'] tr[data-edge='lobby-box']")
    expect(edge).to_have_count(1)
    expect(edge.locator("td").nth(1)).to_have_text("尚未同步")
    expect(edge.locator("td").nth(2)).to_have_text("尚未同步")
    expect(edge.locator("td").nth(4)).to_have_text("尚未同步")
    page.click("#lang")
    expect(edge.locator("td").nth(1)).to_have_text("Not yet synced")
    expect(page.locator("h1.page")).to_have_text("Branches and edge boxes")
    page.click("#lang")

    # once the box has synced: when, which gallery, which model, each camera's health
    ctx = console.app.state.ctx
    with ctx.db.transaction() as session:
        row = session.scalars(select(Edge).where(Edge.name == "lobby-box")).one()
        row.last_seen_at = utcnow() - timedelta(minutes=5, seconds=10)
        row.gallery_version = 42
        row.model_id = "dlib-resnet-v1"
        row.camera_health = {"entrance": {"state": "ok"}, "parking": {"state": "offline"}}
    page.reload()
    expect(edge.locator("td").nth(1)).to_contain_text("（5 分钟前）")
    expect(edge.locator("td").nth(2)).to_have_text("42")
    expect(edge.locator("td").nth(3)).to_have_text("dlib-resnet-v1")
    expect(edge.locator("td").nth(4).locator(".badge.ok")).to_have_text("entrance: ok")
    expect(edge.locator("td").nth(4).locator(".badge.bad")).to_have_text("parking: offline")


def test_a_compliance_officer_sees_only_what_their_role_allows(page: Page, console: Console, watch: Watch,
                                                              photos_dir: Path) -> None:
    sign_in(page)
    person = enrol_by_api(page, "奥巴马", photos_dir / "obama.jpg")
    res = page.request.post("/api/users", headers=csrf_headers(page), data={
        "username": "auditor", "display_name": "合规专员", "password": "another long password", "role": "compliance",
        "scope_kind": "all"})
    assert res.status == 201, res.text()
    page.click("#logout")
    page.wait_for_url(re.compile(r"/login$"))
    sign_in(page, "auditor", "another long password", start=f"/persons/{person['id']}")
    expect(page.locator("#me")).to_have_text("合规专员 · 合规")
    nav = page.locator("#topbar .nav a:visible")
    expect(nav).to_have_text(["人员", "审计日志", "网点", "统计"])
    expect(page.locator("#name")).to_have_text("奥巴马")
    expect(page.locator("#erase")).to_be_visible()  # compliance may erase (the right to be forgotten)
    expect(page.locator("#plate-form")).to_be_hidden()
    page.goto("/persons")
    expect(page.locator("#persons tbody tr.link")).to_have_count(1)
    expect(page.locator("#enrol-new")).to_be_hidden()


def test_photos_are_added_and_removed_and_consent_is_recorded_on_the_person_page(
        page: Page, console: Console, watch: Watch, photos_dir: Path) -> None:
    sign_in(page)
    obama = enrol_by_api(page, "奥巴马", photos_dir / "obama.jpg")
    page.goto(f"/persons/{obama['id']}")
    figures = page.locator("#photos figure")
    expect(figures).to_have_count(1)

    page.set_input_files("#photo-input", str(photos_dir / "obama2.jpg"))
    page.click("#photo-form button[type=submit]")
    expect(page.locator("#photo-msg")).to_have_text("已添加照片")
    expect(figures).to_have_count(2)

    # someone else's face, and a group photo: refused with the reason, nothing added
    watch.expect(422, r"/photos$")
    page.set_input_files("#photo-input", str(photos_dir / "biden.jpg"))
    page.click("#photo-form button[type=submit]")
    expect(page.locator("#photo-msg")).to_contain_text("这张照片与该人员已有的照片不是同一人")
    page.set_input_files("#photo-input", str(photos_dir / "t1.jpg"))
    page.click("#photo-form button[type=submit]")
    expect(page.locator("#photo-msg")).to_contain_text("照片中有多张人脸，只能有一人")
    expect(figures).to_have_count(2)

    page.on("dialog", lambda d: d.accept())
    figures.nth(0).locator("button").click()
    expect(page.locator("#photo-msg")).to_have_text("已删除照片")
    expect(figures).to_have_count(1)
    watch.expect(409, r"/photos/[\w-]+$")
    figures.nth(0).locator("button").click()
    expect(page.locator("#photo-msg")).to_contain_text("至少需要保留一张照片")
    expect(figures).to_have_count(1)

    consents = page.locator("#consents tbody tr")
    expect(consents).to_have_count(1)
    page.fill("#consent-form input[name=purpose]", "停车场车牌识别")
    page.set_input_files("#consent-form input[name=evidence]", str(photos_dir / "obama3.jpg"))
    page.click("#consent-form button[type=submit]")
    expect(page.locator("#consent-msg")).to_have_text("已添加授权记录")
    expect(consents).to_have_count(2)
    added = consents.filter(has_text="停车场车牌识别")
    expect(added).to_contain_text("管理员")  # the operator defaults to the signed-in user's name
    expect(added.locator("a")).to_have_text("obama3.jpg")

    page.click("#edit")
    page.fill("#edit-form input[name=tier]", "diamond")
    page.fill("#edit-form textarea[name=notes]", "喜欢靠窗的位置")
    page.click("#edit-form button[type=submit]")
    expect(page.locator("#edit-msg")).to_have_text("已保存")
    expect(page.locator("#tier")).to_have_text("diamond")
    expect(page.locator("#notes")).to_have_text("喜欢靠窗的位置")
    expect(page.locator("#history tbody")).to_contain_text("修改资料")
    page.reload()
    expect(page.locator("#tier")).to_have_text("diamond")
