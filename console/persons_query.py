"""Reading persons as a caller may see them: one person (404 outside the caller's scope, so the ids of other
branches are never confirmed), the list with its filters, and the JSON shapes of the API contract."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from console.errors import not_found
from console.security import Principal
from console.tables import Person


def visible_person(session: Session, actor: Principal, person_id: str) -> Person:
    """``person_id`` when their home branch is in ``actor``'s scope; 404 otherwise."""
    person = session.get(Person, person_id)
    if person is None or not actor.sees_branch(person.home_branch_id):
        raise not_found("person", person_id)
    return person


def loaded_person(session: Session, person_id: str) -> Person:
    """``person_id`` with photos, plates, consents and scope branches loaded (usable after the session ends)."""
    return session.scalars(select(Person).where(Person.id == person_id).options(
        selectinload(Person.photos), selectinload(Person.plates), selectinload(Person.consents),
        selectinload(Person.scope_branches)).execution_options(populate_existing=True)).one()
