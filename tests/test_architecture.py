"""The dependency rules of ARCHITECTURE.md ("Layout and dependency direction"), enforced with ``ast``.

Every ``import`` and ``from ... import`` in calibration/, models/, vault/, vision/, alerts/, edge/, console/
and bench/ is parsed (including imports inside functions and relative imports) and checked against
the table below. A synthetic source string proves that the checker flags what it should.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = frozenset({"calibration", "models", "vault", "vision", "alerts", "edge", "console"})
SCANNED = ("calibration", "models", "vault", "vision", "alerts", "edge", "console", "bench")

# Of our packages, which each package may import (itself always allowed). None: anything.
ALLOWED_OURS: dict[str, frozenset[str] | None] = {
    "calibration": frozenset(),
    "models": frozenset(),
    "vault": frozenset(),
    "alerts": frozenset(),
    "vision": frozenset({"models", "calibration"}),
    "edge": frozenset({"calibration", "models", "vault", "vision", "alerts"}),
    "console": frozenset({"vision", "models", "vault", "alerts"}),
    "bench": None,
}
# Third-party packages a package must never import.
FORBIDDEN_THIRD_PARTY: dict[str, frozenset[str]] = {
    "vision": frozenset({"fastapi", "sqlalchemy", "starlette", "uvicorn"}),
}


@dataclass(frozen=True, slots=True)
class Violation:
    file: str
    line: int
    importer: str
    imported: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.importer} must not import {self.imported}"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in ``source``, relative imports resolved."""
    tree = ast.parse(source)
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: max(0, len(package_parts) - (node.level - 1))]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return found


def check_source(source: str, module: str, file: str = "<string>", is_package: bool = False) -> list[Violation]:
    """Violations of the layout rules by ``source``, the text of ``module``."""
    importer = module.split(".")[0]
    allowed = ALLOWED_OURS.get(importer, frozenset())
    forbidden = FORBIDDEN_THIRD_PARTY.get(importer, frozenset())
    out: list[Violation] = []
    for line, target in imported_modules(source, module, is_package):
        top = target.split(".")[0]
        if top == importer:
            continue
        breaks_layer = top in OURS and allowed is not None and top not in allowed
        if breaks_layer or top in forbidden:
            out.append(Violation(file, line, importer, target))
    return out


def _python_files() -> list[Path]:
    files: list[Path] = []
    for package in SCANNED:
        folder = ROOT / package
        if folder.is_dir():
            files.extend(sorted(folder.rglob("*.py")))
    return files


def test_the_scanned_tree_is_not_empty() -> None:
    # given the repository, when its packages are listed, then the core ones are found with files
    files = _python_files()
    packages = {p.relative_to(ROOT).parts[0] for p in files}
    assert {"calibration", "models", "vision", "alerts", "edge"} <= packages
    assert len(files) > 20


def test_no_package_breaks_the_dependency_rules() -> None:
    # given every .py file of our packages
    violations: list[Violation] = []
    for path in _python_files():
        # when its imports are parsed and checked
        violations.extend(check_source(path.read_text(encoding="utf-8"), _module_name(path, ROOT),
                                       str(path.relative_to(ROOT)), is_package=path.name == "__init__.py"))
    # then none breaks a rule
    assert violations == [], "\n".join(str(v) for v in violations)


def test_vision_really_imports_models_so_the_scan_sees_cross_package_imports() -> None:
    # given the dlib engine module, when its imports are parsed, then models.packs is among them
    path = ROOT / "vision" / "engines" / "dlib_engine.py"
    targets = {t for _, t in imported_modules(path.read_text(encoding="utf-8"), "vision.engines.dlib_engine")}
    assert "models.packs" in targets


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        # empty source: nothing to flag
        ("vision.x", "", []),
        # allowed imports
        ("vision.x", "import numpy\nfrom models.packs import resolve_pack\nimport calibration.zones\n", []),
        ("vision.x", "from vision.types import Frame\nfrom . import types\n", []),
        ("edge.x", "from vision.types import Frame\nimport alerts.hub\nfrom edge import config\n", []),
        ("console.x", "from vision.gallery import Gallery\nfrom alerts.envelope import Alert\n", []),
        ("bench.x", "import edge.api.app\nimport console.app\nimport fastapi\n", []),
        ("alerts.x", "import fastapi\nfrom alerts.envelope import Alert\n", []),
        # vision: web frameworks and storage
        ("vision.x", "import fastapi", ["fastapi"]),
        ("vision.x", "from sqlalchemy.orm import Session", ["sqlalchemy.orm"]),
        ("vision.x", "from starlette.requests import Request", ["starlette.requests"]),
        ("vision.x", "import uvicorn", ["uvicorn"]),
        # vision: our upper layers, also inside a function body
        ("vision.x", "def f():\n    from edge.config import EdgeConfig\n", ["edge.config"]),
        ("vision.x", "import alerts.envelope as env", ["alerts.envelope"]),
        ("vision.x", "from console import app", ["console"]),
        # leaf packages import none of ours
        ("calibration.x", "from vision.types import Detections", ["vision.types"]),
        ("models.x", "import calibration", ["calibration"]),
        ("vault.x", "from edge.errors import ConfigError", ["edge.errors"]),
        ("vault.x", "import vision.gallery", ["vision.gallery"]),
        ("edge.x", "from vault.keys import DataKey\n", []),
        ("console.x", "from vault.clip_file import ClipReader\n", []),
        ("alerts.x", "from edge.store.db import Store", ["edge.store.db"]),
        ("alerts.x", "from models.packs import list_packs", ["models.packs"]),
        # console may not import edge
        ("console.x", "from edge.config import EdgeConfig", ["edge.config"]),
        # relative import that climbs out of the package: vision.engines.x -> ... -> top level "edge"
        ("vision.engines.x", "from ...edge import config", ["edge"]),
        # two violations on two lines
        ("models.x", "import vision\nimport edge\n", ["vision", "edge"]),
    ],
)
def test_checker_flags_synthetic_sources(module: str, source: str, expected: list[str]) -> None:
    # given a synthetic module source, when checked
    violations = check_source(source, module)
    # then exactly the expected imports are flagged, with their line numbers
    assert [v.imported for v in violations] == expected
    assert all(v.line >= 1 for v in violations)


def test_checker_reports_file_and_line() -> None:
    # given a violating source on line 3
    source = "import numpy\nimport cv2\nfrom fastapi import FastAPI\n"
    # when checked
    [violation] = check_source(source, "vision.bad", file="vision/bad.py")
    # then the report names the file, the line and both packages
    assert str(violation) == "vision/bad.py:3: vision must not import fastapi"


def test_checker_rejects_unparseable_source() -> None:
    # given bad Python, when checked, then the parse error surfaces rather than a silent pass
    with pytest.raises(SyntaxError):
        check_source("import (", "vision.x")
