"""The calibration page's texts: every label the page shows exists in Chinese and in English."""

from __future__ import annotations

import re
from importlib import resources

from tests.page_helpers import i18n_tables


def static(name: str) -> str:
    return resources.files("edge.api").joinpath(f"static/{name}").read_text(encoding="utf-8")


def test_both_languages_have_the_same_texts_and_cover_the_page() -> None:
    tables = i18n_tables(static("calibrate.js"))
    assert tables["zh"].keys() == tables["en"].keys()
    used = set(re.findall(r'data-t="(\w+)"', static("calibrate.html")))
    used |= set(re.findall(r"\bt\('(\w+)'", static("calibrate.js")))
    assert used and used <= tables["zh"].keys(), sorted(used - tables["zh"].keys())
    assert [k for k, text in tables["zh"].items() if not re.search(r"[\u4e00-\u9fff]", text)] == []  # Chinese first
