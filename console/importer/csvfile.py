"""The import CSV: one person a row, keyed by ``external_id``.

The file is checked as a whole first (UTF-8 with or without a BOM, a header of known columns, at most
:data:`MAX_ROWS` rows and :data:`MAX_CSV_BYTES` bytes): a file that fails here makes no job at all. Each row is
then checked on its own, without the database: a row with a problem becomes a :class:`RowProblem` (a stable
code and a reason) and the other rows go on. What needs the database (the branch exists, the plate is free,
the face is new) is checked later, row by row, by :mod:`console.importer.rows`.

A column left out of the header means "keep what is stored" for a person who exists already; a column that
is present means its cell is the value (an empty ``notes`` clears the notes, an empty ``plates`` removes the
plates). The exceptions are ``tier``, ``photos`` and the consent columns: an empty cell there keeps what is
stored, because a person always keeps a tier, at least one photo and a consent record. Text is cleaned as the
enrolment service cleans it (:func:`alerts.text.display_text`), so that a re-run compares like with like.

``consent_covers`` names the uses the row's consent covers (;-separated codes of :data:`console.consent.PURPOSES`;
empty: the enrolment only); it goes with the three consent columns. Without the column, a consent already stored
keeps its uses and a new one covers the enrolment only.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import date

from alerts.text import display_text
from console.consent import ENROLMENT, PURPOSES
from console.errors import ConsoleError

COLUMNS = ("external_id", "name", "role", "tier", "home_branch", "scope", "plates", "photos", "notes",
           "consent_purpose", "consent_date", "consent_operator", "consent_covers")
REQUIRED_COLUMNS = ("external_id",)
MAX_ROWS = 100_000
MAX_CSV_BYTES = 32 * 1024 * 1024
MAX_PHOTOS = 5
ROLES = ("vip", "staff")
# the same widths as console.tables (a longer value would fail at the database, after the face work)
MAX_LEN = {"external_id": 64, "name": 128, "tier": 32, "home_branch": 32, "notes": 2000,
           "consent_purpose": 200, "consent_operator": 128}


@dataclass(frozen=True, slots=True)
class Scope:
    """A VIP's greeting scope: ``all``, one ``region`` or a list of ``branches`` (codes)."""

    kind: str
    region: str | None = None
    branches: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConsentFields:
    purpose: str
    given_on: date
    operator: str
    covers: tuple[str, ...] | None = None  # codes in PURPOSES order, enrolment first; None: the column is absent


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One row as the file states it. ``None``: the column is absent (or, for photos and consent, empty), so
    what is stored is kept."""

    line: int  # the row's line in a spreadsheet (the header is line 1)
    external_id: str
    name: str | None = None
    role: str | None = None
    tier: str | None = None  # None also for an empty cell (keep the stored tier; a new VIP needs one)
    home_branch: str | None = None
    scope: Scope | None = None
    scope_given: bool = False  # the scope column is present (an empty cell: the role's default scope)
    plates: tuple[str, ...] | None = None
    photos: tuple[str, ...] | None = None
    notes: str | None = None
    consent: ConsentFields | None = None


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row refused before any database or face work."""

    line: int
    external_id: str
    name: str
    code: str
    reason: str


@dataclass(slots=True)
class ParsedCsv:
    columns: tuple[str, ...]
    rows: list[ImportRow | RowProblem] = field(default_factory=list)
    sha256: str = ""  # of the file's bytes: a resume must read the same file

    @property
    def total(self) -> int:
        return len(self.rows)


class _RowError(ValueError):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def bad_csv(message: str) -> ConsoleError:
    return ConsoleError("bad_csv", message, 422)


def decode_csv(data: bytes) -> str:
    """The file's text; a file over the cap or not in UTF-8 is refused with a hint on how to save it."""
    if len(data) > MAX_CSV_BYTES:
        raise bad_csv(f"CSV 文件过大（{len(data)} 字节，上限 {MAX_CSV_BYTES}）/ the CSV file is {len(data)} bytes; "
                      f"the limit is {MAX_CSV_BYTES}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad_csv(f"CSV 文件不是 UTF-8 编码（第 {exc.start} 字节）；在 Excel 中请另存为“CSV UTF-8” / the CSV file "
                      f"is not UTF-8 (byte {exc.start}); in Excel, save as 'CSV UTF-8'") from exc


def parse_csv(data: bytes) -> ParsedCsv:
    """Check the file as a whole and each row on its own (see the module docstring)."""
    text = decode_csv(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise bad_csv("CSV 文件为空，需要表头行 / the CSV file is empty; a header row is needed") from None
    except csv.Error as exc:
        raise bad_csv(f"CSV 表头无法解析 / the CSV header cannot be parsed: {exc}") from exc
    columns = tuple(h.strip().lower() for h in header)
    _check_header(columns)
    parsed = ParsedCsv(columns, sha256=hashlib.sha256(data).hexdigest())
    seen: dict[str, int] = {}
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # a blank line (Excel leaves some at the end)
            if len(parsed.rows) >= MAX_ROWS:
                raise bad_csv(f"CSV 超过 {MAX_ROWS} 行，请拆分文件 / the CSV has more than {MAX_ROWS} rows; "
                              "split it into several files")
            parsed.rows.append(_row(reader.line_num, columns, cells, seen))
    except csv.Error as exc:
        raise bad_csv(f"CSV 第 {reader.line_num} 行无法解析 / line {reader.line_num} cannot be parsed: {exc}") from exc
    return parsed


def _check_header(columns: tuple[str, ...]) -> None:
    known = ", ".join(COLUMNS)
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ConsoleError("bad_csv", f"未知的列 / unknown columns: {', '.join(repr(c) for c in unknown)}; "
                                      f"已知的列 / known columns: {known}", 422, known_columns=list(COLUMNS))
    doubled = sorted({c for c in columns if columns.count(c) > 1})
    if doubled:
        raise bad_csv(f"列重复 / columns given twice: {', '.join(doubled)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ConsoleError("bad_csv", f"缺少必需的列 / required columns missing: {', '.join(missing)}; "
                                      f"已知的列 / known columns: {known}", 422, known_columns=list(COLUMNS))


def _row(line: int, columns: tuple[str, ...], cells: list[str], seen: dict[str, int]) -> ImportRow | RowProblem:
    values = {c: (cells[i] if i < len(cells) else "") for i, c in enumerate(columns)}
    external_id = display_text(values.get("external_id", ""))
    name = display_text(values.get("name", ""))
    try:
        if len(cells) > len(columns):
            raise _RowError("invalid", f"the row has {len(cells)} cells; the header has {len(columns)}")
        if not external_id:
            raise _RowError("missing_field", "external_id is empty")
        first = seen.get(external_id)
        if first is not None:
            raise _RowError("duplicate_row", f"external_id {external_id} is also on line {first} of this file")
        seen[external_id] = line
        return _fields(line, external_id, values)
    except _RowError as exc:
        return RowProblem(line, external_id, name, exc.code, exc.reason)


def _fields(line: int, external_id: str, values: dict[str, str]) -> ImportRow:
    for column, limit in MAX_LEN.items():
        if len(values.get(column, "").strip()) > limit:
            raise _RowError("invalid", f"{column} is longer than {limit} characters")
    present = values.keys()
    name = display_text(values["name"]) if "name" in present else None
    if name is not None and not name:
        raise _RowError("missing_field", "name is empty")
    role = values["role"].strip().lower() if "role" in present else None
    if role is not None and role not in ROLES:
        raise _RowError("invalid_role", f"role must be vip or staff, not {values['role']!r}")
    home = values["home_branch"].strip() if "home_branch" in present else None
    if home is not None and not home:
        raise _RowError("missing_field", "home_branch is empty")
    return ImportRow(
        line=line, external_id=external_id, name=name, role=role,
        tier=display_text(values["tier"]) or None if "tier" in present else None,
        home_branch=home,
        scope=parse_scope(values["scope"]) if "scope" in present else None, scope_given="scope" in present,
        plates=_split(values["plates"]) if "plates" in present else None,
        photos=_photos(values.get("photos", "")),
        notes=display_text(values["notes"], compatibility=False) if "notes" in present else None,
        consent=_consent(values))


def parse_scope(text: str) -> Scope | None:
    """``all`` | ``region:<name>`` | ``branches:<code>;<code>``; empty: None (the default for the role)."""
    text = text.strip()
    if not text:
        return None
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind == "all" and not sep:
        return Scope("all")
    if kind == "region" and rest.strip():
        return Scope("region", region=rest.strip())
    if kind == "branches":
        codes = _split(rest)
        if codes:
            return Scope("branches", branches=codes)
    raise _RowError("invalid_scope", f"scope must be all, region:<name> or branches:<code>;<code>, not {text!r}")


def _split(text: str) -> tuple[str, ...]:
    """A ;-separated list (a full-width ； too, as a Chinese keyboard types it); empty items dropped, order kept,
    repeats dropped."""
    items = [p.strip() for p in text.replace("；", ";").split(";")]
    return tuple(dict.fromkeys(p for p in items if p))


def _photos(text: str) -> tuple[str, ...] | None:
    names = tuple(n.replace("\\", "/") for n in _split(text))
    if len(names) > MAX_PHOTOS:
        raise _RowError("too_many_photos", f"{len(names)} photos; at most {MAX_PHOTOS} a person")
    return names or None


def _consent(values: dict[str, str]) -> ConsentFields | None:
    purpose = values.get("consent_purpose", "").strip()
    when = values.get("consent_date", "").strip()
    operator = values.get("consent_operator", "").strip()
    covers = _covers(values["consent_covers"]) if "consent_covers" in values else None
    if not (purpose or when or operator):
        if covers is not None and covers != (ENROLMENT,):
            raise _RowError("no_consent", "consent_covers goes with consent_purpose, consent_date and "
                                          "consent_operator; they are empty")
        return None
    if not (purpose and when and operator):
        raise _RowError("no_consent", "consent_purpose, consent_date and consent_operator go together; "
                                      "one of them is empty")
    try:
        given_on = date.fromisoformat(when.replace("/", "-"))
    except ValueError:
        raise _RowError("invalid_date", f"consent_date must be YYYY-MM-DD, not {when!r}") from None
    return ConsentFields(purpose, given_on, operator, covers)


def _covers(text: str) -> tuple[str, ...]:
    """The ;-separated purpose codes, with the enrolment, in :data:`PURPOSES` order; an unknown code refuses the
    row naming it."""
    codes = set(_split(text))
    unknown = sorted(codes - PURPOSES.keys())
    if unknown:
        raise _RowError("invalid_consent", f"consent_covers: unknown consent purpose code {', '.join(unknown)} "
                                           f"(known: {', '.join(PURPOSES)})")
    return tuple(c for c in PURPOSES if c in codes or c == ENROLMENT)
