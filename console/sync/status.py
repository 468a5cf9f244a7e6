"""An edge's status report: what it has applied, its model and cameras, and the erasures it has carried out.

The edge row keeps the newest report (``last_seen_at``, ``gallery_version``, ``model_id``, ``camera_health`` as
``{camera id: {name, role, status, fps, last_frame_at}}``, which the branches page shows); the software and the
persons it could not embed are logged. Each confirmed erasure of a tombstoned person is an audit row
``erasure_confirmed`` (detail: edge, branch), once per edge and person: the record that the person is gone
from that box too. Ids that were only out of scope (no tombstone) need no record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit import record
from console.db import utcnow
from console.sync.auth import EdgeCaller
from console.sync.feed import current_version
from console.tables import AuditRow, Edge, Tombstone

CONFIRMED = "erasure_confirmed"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusReport:
    gallery_version: int
    model_id: str = ""
    software: str = ""
    cameras: list[dict[str, Any]] = field(default_factory=list)
    erased_confirmed: list[str] = field(default_factory=list)
    embed_failures: list[dict[str, Any]] = field(default_factory=list)


def _health(report: StatusReport) -> dict[str, Any]:
    health: dict[str, Any] = {}
    for i, camera in enumerate(report.cameras):
        key = str(camera.get("id") or camera.get("name") or f"camera-{i + 1}")[:64]
        health[key] = {k: camera.get(k) for k in ("name", "role", "status", "fps", "last_frame_at")}
    return health


def apply_status(session: Session, edge: EdgeCaller, report: StatusReport) -> dict[str, int]:
    """Store the report on the edge's row and audit its new erasure confirmations; the console's version."""
    row = session.get_one(Edge, edge.edge_id)
    if report.embed_failures:
        log.warning("edge %s (%s) could not embed %d person(s): %s", edge.actor, report.software,
                    len(report.embed_failures), report.embed_failures[:20])
    row.last_seen_at = utcnow()
    row.gallery_version = report.gallery_version
    row.model_id = report.model_id[:128] or row.model_id
    row.camera_health = _health(report)
    ids = sorted({i for i in report.erased_confirmed if isinstance(i, str) and 0 < len(i) <= 32})
    if ids:
        erased = set(session.scalars(select(Tombstone.person_id).where(Tombstone.person_id.in_(ids))))
        done = set(session.scalars(select(AuditRow.object_id).where(
            AuditRow.action == CONFIRMED, AuditRow.actor == edge.actor, AuditRow.object_id.in_(ids))))
        for person_id in sorted(erased - done):
            audit_row = record(session, edge.actor, CONFIRMED, object_type="person", object_id=person_id,
                               branch_code=edge.branch_code, ip=edge.ip,
                               detail={"edge": edge.edge_id, "branch": edge.branch_code})
            audit_row.actor_role = "edge"
    return {"version": current_version(session)}
