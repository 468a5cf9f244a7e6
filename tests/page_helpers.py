"""Reading the self-contained HTML pages (lobby terminal, review page) in tests: their one inline script,
a balanced ``{...}`` block of it, and their i18n tables."""

from __future__ import annotations

import re


def inline_script(html: str) -> str:
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1, "the page keeps one inline script"
    return str(scripts[0])


def balanced(source: str, start: int) -> str:
    """source[start:] up to the brace closing the first '{' (skips quoted strings)."""
    depth, i, quote = 0, source.index("{", start), ""
    begin = start
    while i < len(source):
        c = source[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return source[begin:i + 1]
        i += 1
    raise AssertionError(f"unbalanced braces after {source[start:start + 40]!r}")


def i18n_tables(script: str) -> dict[str, dict[str, str]]:
    """The page's ``var I18N = {zh: {...}, en: {...}}`` tables, one ``key: 'string'`` per line."""
    block = balanced(script, script.index("var I18N = {"))
    tables: dict[str, dict[str, str]] = {}
    for lang in ("zh", "en"):
        body = balanced(block, block.index(f"\n    {lang}: {{"))
        lines = [line for line in body[body.index("{") + 1:-1].splitlines() if line.strip()]
        pairs = re.findall(r"^\s*(\w+): '((?:[^'\\]|\\.)*)',?$", "\n".join(lines), re.M)
        assert pairs and len(pairs) == len(lines), f"every {lang} line is one key: 'string'"
        tables[lang] = dict(pairs)
    return tables
