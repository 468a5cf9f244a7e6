"""The dependency rules of ARCHITECTURE.md ("Layout and dependency direction"), enforced with ``ast``.

Every ``import`` and ``from ... import`` in calibration/, models/, vault/, vision/, alerts/, edge/, console/
and bench/ is parsed (including imports inside functions and relative imports) and checked against
the table below. A synthetic source string proves that the checker flags what it should.

The house (README "For developers", "The map") adds four checks, each shown to fail on a small synthetic
tree written under ``tmp_path``: no import circle between modules (imports under ``if TYPE_CHECKING`` do
not run and do not count), no import up edge's floors (:data:`EDGE_FLOORS`), no capability folder of edge/
importing another's modules that its ``__init__.py`` does not list in ``__all__``, and no module over
:data:`MAX_MODULE_LINES` lines.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = frozenset({"calibration", "models", "vault", "vision", "alerts", "edge", "console", "launch"})
SCANNED = ("calibration", "models", "vault", "vision", "alerts", "edge", "console", "launch", "bench")

# Of our packages, which each package may import (itself always allowed). None: anything.
ALLOWED_OURS: dict[str, frozenset[str] | None] = {
    "calibration": frozenset(),
    "models": frozenset(),
    "vault": frozenset(),
    "alerts": frozenset(),
    "vision": frozenset({"models", "calibration"}),
    "edge": frozenset({"calibration", "models", "vault", "vision", "alerts"}),
    "console": frozenset({"vision", "models", "vault", "alerts"}),
    "launch": None,  # the `smartbranch` command: dispatches to the edge's or the console's CLI
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


# --- The house: import circles, floors inside edge/, rooms' public modules, module size -------------------------

# Floors of edge/ (README "For developers"): a module imports edge modules of its own floor or lower ones only,
# so no room imports what wires it. The longest matching prefix gives a module's floor.
EDGE_FLOORS: dict[str, int] = {
    "edge": 0, "edge.errors": 0, "edge.i18n": 0, "edge.redact": 0, "edge.metrics": 0, "edge.terminal": 0,
    "edge.store": 1, "edge.cameras": 1, "edge.faces": 1, "edge.parking": 1, "edge.counter": 1, "edge.clips": 1,
    "edge.review": 1, "edge.sync": 1,
    "edge.config": 2,
    "edge.config_edit": 2,
    "edge.runtime": 3,
    "edge.api": 4, "edge.calibrate": 4, "edge.evaluation": 4,
    "edge.demo": 5,
    "edge.cli": 6,
}
MAX_MODULE_LINES = 400


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(source: str, module: str, is_package: bool, known: set[str]) -> set[tuple[int, str]]:
    """(line, module of ``known``) imported when ``module`` runs: blocks under ``if TYPE_CHECKING`` do not
    count; ``from pkg import sub`` counts ``pkg.sub`` when that is a module; a name resolves to its module."""
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    found: set[tuple[int, str]] = set()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package_parts[: max(0, len(package_parts) - (node.level - 1))] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            targets = [target, *(f"{target}.{alias.name}" for alias in node.names
                                 if f"{target}.{alias.name}" in known)]
        for target in targets:
            resolved = resolve(target)
            if resolved is not None and resolved != module:
                found.add((node.lineno, resolved))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


@dataclass(frozen=True, slots=True)
class Tree:
    """The modules of some packages under ``root``: their files and runtime imports between them."""

    root: Path
    files: dict[str, Path]
    imports: dict[str, set[tuple[int, str]]]

    @classmethod
    def scan(cls, root: Path, packages: tuple[str, ...]) -> Tree:
        files = {_module_name(p, root): p for package in packages if (root / package).is_dir()
                 for p in sorted((root / package).rglob("*.py"))}
        known = set(files)
        imports = {m: runtime_imports(p.read_text(encoding="utf-8"), m, p.name == "__init__.py", known)
                   for m, p in files.items()}
        return cls(root, files, imports)

    def where(self, module: str, line: int) -> str:
        return f"{self.files[module].relative_to(self.root)}:{line}"


def import_cycles(tree: Tree) -> list[list[str]]:
    """Every group of modules that import each other in a circle (Tarjan's strongly connected components)."""
    graph = {m: sorted({t for _, t in targets}) for m, targets in tree.imports.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(cycles)


def edge_floor(module: str) -> int | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        floor = EDGE_FLOORS.get(".".join(parts[:n]))
        if floor is not None and (n > 1 or len(parts) == 1):
            return floor
    return None


def floor_violations(tree: Tree) -> list[str]:
    """Imports inside edge/ that run up a floor, and edge modules missing from the floor table."""
    out: list[str] = []
    for module, targets in sorted(tree.imports.items()):
        if module.split(".")[0] != "edge":
            continue
        floor = edge_floor(module)
        if floor is None:
            out.append(f"{tree.where(module, 1)}: {module} is on no floor (add it to EDGE_FLOORS and the README map)")
            continue
        for line, target in sorted(targets):
            target_floor = edge_floor(target) if target.split(".")[0] == "edge" else None
            if target_floor is not None and target_floor > floor:
                out.append(f"{tree.where(module, line)}: {module} (floor {floor}) imports {target} "
                           f"(floor {target_floor})")
    return out


def public_modules(tree: Tree, room: str) -> frozenset[str]:
    """A room's public modules: the submodules its ``__init__.py`` lists in ``__all__``."""
    init = tree.files.get(room)
    if init is None:
        return frozenset()
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                and isinstance(node.value, ast.List | ast.Tuple)):
            return frozenset(f"{room}.{e.value}" for e in node.value.elts
                             if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return frozenset()


def room_of(tree: Tree, module: str) -> str | None:
    """``edge.<room>`` when ``module`` lives in a capability folder of edge/ (a package under edge/)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "edge":
        return None
    room = ".".join(parts[:2])
    return room if tree.files.get(room, Path()).name == "__init__.py" else None


def internals_violations(tree: Tree) -> list[str]:
    """Imports from one capability folder of edge/ into another's modules that it does not list as public."""
    out: list[str] = []
    for module, targets in sorted(tree.imports.items()):
        if module.split(".")[0] != "edge":
            continue
        own = room_of(tree, module)
        for line, target in sorted(targets):
            room = room_of(tree, target)
            if room is None or room == own or target == room:
                continue
            public = public_modules(tree, room)
            if not any(target == p or target.startswith(p + ".") for p in public):
                out.append(f"{tree.where(module, line)}: {module} imports {target}, an internal of {room} "
                           f"(public: {sorted(public)})")
    return out


def long_modules(tree: Tree, limit: int = MAX_MODULE_LINES) -> list[str]:
    out = []
    for path in sorted(tree.files.values()):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            out.append(f"{path.relative_to(tree.root)}: {lines} lines (limit {limit})")
    return out


@pytest.fixture(scope="module")
def house() -> Tree:
    return Tree.scan(ROOT, (*SCANNED, "vault"))


def test_no_import_circles(house: Tree) -> None:
    # given every module of our packages, when their runtime imports are followed, then none comes back to itself
    assert import_cycles(house) == []


def test_no_edge_module_imports_a_higher_floor(house: Tree) -> None:
    assert floor_violations(house) == []


def test_capability_folders_import_only_each_others_public_modules(house: Tree) -> None:
    assert internals_violations(house) == []


def test_no_module_is_over_the_size_limit(house: Tree) -> None:
    assert long_modules(house) == []


def test_every_capability_folder_declares_its_public_modules(house: Tree) -> None:
    # given the capability folders of edge/, then each lists its public modules, and each listed one exists
    rooms = sorted({r for m in house.files if (r := room_of(house, m)) is not None})
    assert len(rooms) >= 8
    for room in rooms:
        public = public_modules(house, room)
        assert public, f"{room}/__init__.py has no __all__"
        assert public <= set(house.files), f"{room} lists missing modules: {sorted(public - set(house.files))}"


def _write(root: Path, files: dict[str, str]) -> Tree:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Tree.scan(root, ("edge", "vision"))


def test_cycle_check_finds_a_synthetic_circle_and_ignores_type_checking_imports(tmp_path: Path) -> None:
    # given a -> b -> c -> a at run time, and d <-> e only through a TYPE_CHECKING block
    tree = _write(tmp_path, {
        "vision/__init__.py": "",
        "vision/a.py": "from vision.b import x\n",
        "vision/b.py": "def f():\n    import vision.c\n",
        "vision/c.py": "from vision import a\n",
        "vision/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vision.e import E\n",
        "vision/e.py": "from vision.d import D\n",
    })
    # when the circles are searched, then exactly the run-time one is found, the function-level import included
    assert import_cycles(tree) == [["vision.a", "vision.b", "vision.c"]]


def test_floor_check_flags_a_room_importing_the_runtime_and_an_unmapped_module(tmp_path: Path) -> None:
    # given a room module importing the runtime (floor 3) and the config (floor 2), and a module on no floor
    tree = _write(tmp_path, {
        "edge/__init__.py": "", "edge/runtime.py": "", "edge/config.py": "", "edge/errors.py": "",
        "edge/clips/__init__.py": "__all__ = ['ring']\n",
        "edge/clips/ring.py": "from edge.errors import E\nfrom edge.runtime import EdgeRuntime\n"
                              "import edge.config\n",
        "edge/stray.py": "",
    })
    problems = floor_violations(tree)
    # then the two upward imports and the stray module are reported, the floor-0 import is not
    assert len(problems) == 3
    assert any("edge.clips.ring (floor 1) imports edge.runtime (floor 3)" in p for p in problems)
    assert any("imports edge.config (floor 2)" in p for p in problems)
    assert any("edge.stray is on no floor" in p for p in problems)


def test_internals_check_flags_a_room_reaching_into_another(tmp_path: Path) -> None:
    # given clips listing only "types" as public, and review importing clips.types (fine), clips.ring (internal)
    tree = _write(tmp_path, {
        "edge/__init__.py": "",
        "edge/clips/__init__.py": "__all__ = ['types']\n", "edge/clips/types.py": "", "edge/clips/ring.py": "",
        "edge/review/__init__.py": "__all__ = ['store']\n",
        "edge/review/store.py": "from edge.clips.types import T\nfrom edge.clips import ring\n"
                                "from .tables import Row\n",
        "edge/review/tables.py": "from edge.clips.ring import FrameRing\n",
    })
    problems = internals_violations(tree)
    # then the two internal imports are flagged (a room's own modules and public ones are not)
    assert len(problems) == 2
    assert all("an internal of edge.clips" in p for p in problems)
    assert {p.split(": ")[0] for p in problems} == {"edge/review/store.py:2", "edge/review/tables.py:1"}


def test_size_check_flags_a_module_over_the_limit(tmp_path: Path) -> None:
    # given one module of 401 lines and one of 400
    tree = _write(tmp_path, {"vision/__init__.py": "", "vision/big.py": "x = 1\n" * 401,
                             "vision/fine.py": "x = 1\n" * 400})
    # when checked, then only the long one is reported
    assert long_modules(tree) == ["vision/big.py: 401 lines (limit 400)"]
