"""Faces as questions: the enrol form's live photo check, and search by photo.

Both search the bank-wide duplicate index, so both are audited (``photo_check``, ``search_by_photo``); the
uploaded photo itself is never stored. A match outside the caller's scope is shown without its id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form

from console import audit
from console.api.deps import Caller, Ctx
from console.api.persons import Upload, read_photo
from console.enrol_photos import check_photo, find_duplicate, matches_for
from console.enrolment import WRITE_ROLES
from console.errors import ConsoleError

router = APIRouter(prefix="/api", tags=["photos"])
SEARCH_FLOOR_BELOW = 0.1  # search shows candidates down to the duplicate threshold minus this
MAX_K = 10


@router.post("/photos/check")
def post_check(ctx: Ctx, caller: Caller, photo: Upload = None) -> dict[str, Any]:
    """``{ok: true, quality…, duplicate: match|null}`` or ``{ok: false, error, detail}`` (both 200)."""
    caller.require_role(*WRITE_ROLES)
    upload = read_photo(ctx, photo, "photo")
    if upload is None:
        raise ConsoleError("no_photo", "请选择照片 / choose a photo", 422, photo="photo")
    try:
        checked = check_photo(ctx, upload)
    except ConsoleError as exc:
        if exc.status >= 500:
            raise
        with ctx.db.transaction() as session:
            audit.record(session, caller, "photo_check", object_type="photo", detail={"ok": False, "error": exc.code})
        return {"ok": False, "error": exc.code, "detail": exc.message}
    match = find_duplicate(ctx, caller, checked.face.embedding)
    with ctx.db.transaction() as session:
        audit.record(session, caller, "photo_check", object_type="photo",
                     detail={"ok": True, "duplicate": match is not None})
    face = checked.face
    return {"ok": True, "face_px": round(face.face_px, 1), "sharpness": round(face.sharpness, 1),
            "yaw": round(face.yaw, 3), "detector_score": round(face.detector_score, 3), "width": checked.width,
            "height": checked.height, "duplicate": match.public() if match is not None else None}


@router.post("/search/photo")
def post_search(ctx: Ctx, caller: Caller, photo: Upload = None,
                k: Annotated[int, Form(ge=1, le=MAX_K)] = 5) -> dict[str, Any]:
    """The enrolled persons most like the photo's face, best first (the photo must pass the enrolment gates)."""
    caller.require_role(*WRITE_ROLES)
    upload = read_photo(ctx, photo, "photo")
    if upload is None:
        raise ConsoleError("no_photo", "请选择照片 / choose a photo", 422, photo="photo")
    checked = check_photo(ctx, upload)
    floor = ctx.config.face.duplicate_threshold - SEARCH_FLOOR_BELOW
    found = matches_for(ctx, caller, checked.face.embedding, k=k, floor=floor)
    with ctx.db.transaction() as session:
        audit.record(session, caller, "search_by_photo", object_type="photo",
                     detail={"k": k, "matches": len(found),
                             "persons": [m.person_id for m in found if m.in_scope]})
    return {"matches": [{"person_id": m.person_id if m.in_scope else None, "name": m.name, "role": m.role,
                         "tier": m.tier, "branch_code": m.branch_code, "score": round(m.score, 4),
                         "in_scope": m.in_scope} for m in found]}
