"""Which persons a branch's edge receives: the rule in one place, as SQL (for a snapshot) and in Python (for a
change set), so the two cannot disagree.

A person is in the scope of branch B when their ``scope_kind`` is ``all``; or ``region`` and their region is
B's region; or ``branches`` and B is one of their branches (a staff member's scope is their home branch, kept as
that one branch; the home branch is also checked for staff, should a row lack it).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session

from console.tables import Branch, Person, PersonBranch


def in_scope_clause(branch_id: int, region: str) -> ColumnElement[bool]:
    listed = exists().where(PersonBranch.person_id == Person.id, PersonBranch.branch_id == branch_id)
    return or_(Person.scope_kind == "all",
               and_(Person.scope_kind == "region", Person.scope_region == region),
               and_(Person.scope_kind == "branches",
                    or_(listed, and_(Person.role == "staff", Person.home_branch_id == branch_id))))


def in_scope(person: Person, branch_id: int, region: str) -> bool:
    if person.scope_kind == "all":
        return True
    if person.scope_kind == "region":
        return person.scope_region == region
    if person.scope_kind == "branches":
        return (any(b.id == branch_id for b in person.scope_branches)
                or (person.role == "staff" and person.home_branch_id == branch_id))
    return False


def branch_codes_for(session: Session, person: Person) -> set[str]:
    """The codes of every branch whose scope holds ``person`` now."""
    if person.scope_kind == "all":
        return set(session.scalars(select(Branch.code)))
    if person.scope_kind == "region":
        return set(session.scalars(select(Branch.code).where(Branch.region == (person.scope_region or ""))))
    codes = {b.code for b in person.scope_branches}
    if person.role == "staff":
        codes.add(person.home_branch.code)
    return codes
