"""What the review store tells the console: the outbox bodies of a finished service episode and of a clip.

They are staged in the same transaction as the row they describe (``Store.stage_event``), so an episode or a
clip is either stored and queued for the console, or neither. The names of the staff member and the VIP are
looked up here, at the edge, because the console lists clips by name and a person enrolled only at this box
has no row at the centre.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.text import display_text
from edge.review.tables import ClipRow, InteractionRow
from edge.store.tables import PersonRow


def _name(session: Session, person_id: str | None) -> str | None:
    if person_id is None:
        return None
    row = session.get(PersonRow, person_id)
    return None if row is None else display_text(row.name)


def interaction_body(session: Session, row: InteractionRow) -> dict[str, object]:
    """A finished episode: who served whom on which camera, when, how long, and how long the customer waited."""
    clip_id = session.scalar(select(ClipRow.id).where(ClipRow.interaction_id == row.id).order_by(ClipRow.id).limit(1))
    return {"id": row.id, "camera": row.camera_id, "staff_id": row.staff_id,
            "staff_name": _name(session, row.staff_id), "staff_track": row.staff_track,
            "customer_track": row.customer_track, "vip_id": row.vip_id, "vip_name": _name(session, row.vip_id),
            "started_at": row.started_at, "ended_at": row.ended_at, "duration_s": row.duration_s,
            "wait_s": row.wait_s, "interrupted": bool(row.interrupted), "clip_id": clip_id}


def clip_body(session: Session, row: ClipRow) -> dict[str, object]:
    """A clip index entry; ``sha256`` and ``size`` are of the plaintext MP4 the sender uploads."""
    return {"id": row.id, "interaction_id": row.interaction_id, "camera": row.camera_id,
            "staff_id": row.staff_id, "staff_name": _name(session, row.staff_id), "vip_id": row.vip_id,
            "vip_name": _name(session, row.vip_id), "started_at": row.started_at, "ended_at": row.ended_at,
            "duration_s": row.duration_s, "size": row.size_bytes, "sha256": row.sha256}
