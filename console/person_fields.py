"""The fields of a person as people type them: names and tiers cleaned for display, the external id, the
greeting scope (staff greet at their home branch only), and the consent an enrolment cannot do without."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.text import display_text
from console.branches import branch_by_code
from console.errors import ConsoleError
from console.plates import ensure_plate_free
from console.security import SCOPE_KINDS, Principal
from console.tables import Branch, Person


def clean_text(value: str | None, field: str, limit: int, zh: str, *, required: bool = True) -> str:
    cleaned = display_text(value or "")
    if (required and not cleaned) or len(cleaned) > limit:
        raise ConsoleError("invalid", f"{zh}须为 {1 if required else 0}–{limit} 个字符 / {field} must have "
                                      f"{1 if required else 0} to {limit} visible characters", 422, field=field)
    return cleaned


def clean_external_id(value: str | None) -> str | None:
    return clean_text(value, "external_id", 64, "外部编号", required=False) or None


def resolve_scope(session: Session, kind: str, region: str | None, codes: Sequence[str],
           home: Branch, role: str) -> tuple[str, str | None, list[Branch]]:
    """(scope kind, region, scope branches) after the rules: staff greet at home only; an empty branch list is
    the home branch."""
    if role == "staff":
        return "branches", None, [home]
    if kind not in SCOPE_KINDS:
        raise ConsoleError("invalid", f"范围须为 {'、'.join(SCOPE_KINDS)} / scope_kind must be one of "
                                      f"{', '.join(SCOPE_KINDS)}", 422, field="scope_kind")
    if kind == "region":
        return kind, clean_text(region, "scope_region", 64, "区域"), []
    if kind == "all":
        return kind, None, []
    branches = [branch_by_code(session, c) for c in dict.fromkeys(c.strip().upper() for c in codes if c.strip())]
    return kind, None, branches or [home]


def require_consent(purpose: str | None, given_on: date | None, operator: str | None) -> None:
    """422 ``no_consent`` unless a purpose, a date and an operator are all given (PIPL: no face without one)."""
    if not (purpose or "").strip() or given_on is None or not (operator or "").strip():
        raise ConsoleError("no_consent", "登记人脸须有同意记录：用途、日期和经办人 / a consent purpose, date and "
                                         "operator are required to enrol a face", 422)


def ensure_external_id_free(session: Session, external_id: str | None, person_id: str | None = None) -> None:
    if external_id is None:
        return
    other = session.scalar(select(Person.id).where(Person.external_id == external_id))
    if other is not None and other != person_id:
        raise ConsoleError("external_id_taken", f"外部编号 {external_id} 已被使用 / external id {external_id} is "
                                                "already in use", 409, field="external_id")


def plate_free_for(session: Session, actor: Principal, plate: str) -> None:
    """ensure_plate_free, with the other person's id left out when ``actor`` may not see them."""
    try:
        ensure_plate_free(session, plate)
    except ConsoleError as exc:
        match = exc.extra.get("match")
        if isinstance(match, dict) and match.get("person_id"):
            holder = session.get(Person, match["person_id"])
            if holder is None or not actor.sees_branch(holder.home_branch_id):
                exc.extra["match"] = {k: v for k, v in match.items() if k != "person_id"}
        raise
