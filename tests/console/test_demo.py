"""The console's part of `make demo`: it serves, its admin signs in, the demo's people are enrolled from real
photos, and a second run on the same folder reuses it (same password, nobody enrolled twice)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from console.demo import ADMIN, DemoPerson, start_console_demo
from tests.waiting import free_port


def test_the_demo_console_serves_an_admin_and_the_demo_people(tmp_path: Path, photo_bytes: Callable[[str], bytes],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    people = [DemoPerson("奥巴马", "钻石", "vip", photo_bytes("obama.jpg")),
              DemoPerson("拜登", "柜员", "staff", photo_bytes("biden.jpg"))]
    for run in range(2):
        demo = start_console_demo(tmp_path / "console", port=free_port(), people=people)
        try:
            password = (tmp_path / "console" / "admin-password").read_text(encoding="utf-8").strip()
            printed = capsys.readouterr().out
            assert demo.url in printed and f"{ADMIN} / {password}" in printed
            assert ("奥巴马、拜登" in printed) == (run == 0)  # the second run enrols nobody again
            with httpx.Client(base_url=demo.url) as client:
                assert client.post("/api/auth/login", json={"username": ADMIN, "password": password}).status_code == 200
                items = client.get("/api/persons").json()["items"]
                assert sorted((p["name"], p["role"], p["photo_count"]) for p in items) == [
                    ("奥巴马", "vip", 1), ("拜登", "staff", 1)]
                assert client.get("/persons").status_code == 200
        finally:
            demo.stop()
    assert oct((tmp_path / "console" / "admin-password").stat().st_mode & 0o777) == "0o600"
