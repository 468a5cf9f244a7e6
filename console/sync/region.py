"""A branch moved to another region moves its edge's scope: the VIPs scoped to the new region must appear at the
branch and those of the old region vanish from it.

The rule: the move appends one gallery change (``upsert``) for every person scoped to the old or the new region,
under the gallery lock, in the same transaction as the move. The branch's edge then pulls them like any change:
the new region's VIPs in full (in scope now), the old region's by id in ``erased`` (out of scope now). Other
branches of the two regions receive those persons again unchanged, which costs them a pull and nothing else.
The moved branch's MQTT topic is announced too (:mod:`console.sync.announce`): after the move, no person's scope
names it for the old region's VIPs.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.db import utcnow
from console.dupindex import lock_gallery
from console.tables import Branch, GalleryChange, Person

ALSO_ANNOUNCE = "sync_announce_also"  # session.info key: branch codes to announce besides the persons' scopes


def region_moved(session: Session, branch: Branch, old_region: str, new_region: str) -> int:
    """Record the move of ``branch`` from ``old_region`` to ``new_region``; returns how many changes it wrote."""
    if old_region == new_region:
        return 0
    persons = list(session.scalars(select(Person).where(Person.scope_kind == "region",
                                                        Person.scope_region.in_([old_region, new_region]))
                                   .order_by(Person.id)))
    if not persons:
        return 0
    lock_gallery(session)
    now = utcnow()
    for person in persons:
        change = GalleryChange(person_id=person.id, kind="upsert")
        session.add(change)
        session.flush()
        person.version = change.seq
        person.updated_at = now
    session.info.setdefault(ALSO_ANNOUNCE, set()).add(branch.code)
    return len(persons)
