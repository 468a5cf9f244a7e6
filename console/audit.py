"""Append-only audit rows, written in the same transaction as what they record.

Every read or write of biometric data writes one: a photo view, a search by photo, an enrolment, an
erasure, an export. The table refuses UPDATE and DELETE (triggers in the initial migration).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from console.security import Principal
from console.tables import AuditRow


def record(session: Session, actor: Principal | str, action: str, *, object_type: str = "",
           object_id: str = "", branch_code: str | None = None, detail: dict[str, Any] | None = None,
           ip: str = "") -> AuditRow:
    """Add an audit row to ``session`` (committed with the session's transaction)."""
    if isinstance(actor, Principal):
        name, role, ip = actor.actor, actor.role, ip or actor.ip
    else:
        name, role = actor, "system"
    row = AuditRow(actor=name[:64], actor_role=role, action=action, object_type=object_type,
                   object_id=str(object_id)[:64], branch_code=branch_code, detail=detail, ip=ip[:64])
    session.add(row)
    return row
