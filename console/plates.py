"""Registered licence plates: the GA 36 grammar decides what is a plate, the edge's matcher decides what is taken.

A plate is refused when it, or a plate a reader confuses with it, is already registered to another person.
"Confuses" is the edge matcher's own rule (:mod:`vision.plates.matcher`): a read within
``MatcherConfig.max_distance`` (0.5) of a registered plate is matched to it, and one OCR-confusable substitution
(0/D/Q/O, 8/B, 1/I/7, 2/Z, 5/S, 6/G) costs ``confusable_cost`` (0.5). Two persons' plates at distance <= 0.5
therefore break the matcher: a correct read of B's car is matched to B, but a read of A's car with that one
usual OCR slip *is* B's plate, at distance 0, so the lobby greets B by name. At distance 1 (two confusable
slips, or one ordinary edit) a one-slip read of either car lies 0.5 from both and the matcher's margin rule
(``min_margin`` 0.5) calls it ambiguous: a missed greeting, never a wrong one. So the console refuses
``distance <= max_distance`` and allows everything further away. Plates of the same person never conflict (the
matcher only compares rival persons).

Speed at 100k plates: every edit other than a confusable substitution costs 1 > ``max_distance``, and the
province is never substituted, so a conflicting plate has the same length, the same province and differs only
by at most ``max_distance // confusable_cost`` confusable substitutions (one, with the defaults). Those are
few (at most 7 positions x 3 alternatives + the plate itself = 22 strings), so the check asks the database for
exactly them (``plate IN (...)`` on the unique index) instead of scanning plates in Python; the distance of each
hit is then computed with the matcher's own :func:`plate_distance`, so the rule stays the matcher's.
"""

from __future__ import annotations

from itertools import combinations, product

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from console.dupindex import lock_gallery
from console.errors import ConsoleError
from console.tables import Branch, GalleryChange, Person, Plate
from vision.plates.errors import InvalidPlateError
from vision.plates.grammar import normalise, parse
from vision.plates.matcher import CONFUSABLE_GROUPS, MatcherConfig, plate_distance

MATCHER = MatcherConfig()
# distance <= this is a conflict: the edge matcher accepts a read that near (see the module docstring)
CONFUSION_THRESHOLD = MATCHER.max_distance

_REASONS_ZH = {
    "empty": "车牌号为空",
    "bad_character": "含有车牌上不会出现的字符",
    "bad_length": "车牌应为 7 或 8 个字符",
    "bad_province": "首字不是省份简称",
    "bad_format": "不符合 GA 36 车牌格式",
    "bad_rows": "双层车牌应为上层省份简称和发牌机关代号、下层序号",
}
_ALTERNATIVES = {c: group.replace(c, "") for group in CONFUSABLE_GROUPS for c in group}


def validate_plate(text: str) -> tuple[str, str]:
    """``(normalised plate, kind)`` of ``text``, or ConsoleError 422 ``invalid_plate`` naming the grammar's
    reason (``reason``: its stable code) in Chinese and English."""
    try:
        info = parse(text)
    except InvalidPlateError as exc:
        zh = _REASONS_ZH.get(exc.code, "不是有效的车牌号")
        raise ConsoleError("invalid_plate", f"车牌号“{text.strip()}”无效：{zh} / invalid plate {text.strip()!r}: {exc}",
                           422, reason=exc.code, plate=text) from exc
    return info.text, info.kind.value


def confusable_variants(plate: str, config: MatcherConfig = MATCHER) -> set[str]:
    """``plate`` and every plate a reader may confuse it with at distance <= ``config.max_distance``: those
    reached by at most ``max_distance // confusable_cost`` confusable substitutions (never of the province
    unless the matcher allows it). Only valid while ``max_distance < 1``: any other edit costs 1."""
    if config.max_distance >= 1.0 or config.confusable_cost <= 0:
        raise ValueError("the SQL prefilter assumes only confusable substitutions fit under the threshold")
    budget = int(config.max_distance // config.confusable_cost)
    first = 0 if config.allow_province_substitution else 1
    spots = [i for i in range(first, len(plate)) if plate[i] in _ALTERNATIVES]
    out = {plate}
    for k in range(1, min(budget, len(spots)) + 1):
        for chosen in combinations(spots, k):
            for letters in product(*(_ALTERNATIVES[plate[i]] for i in chosen)):
                chars = list(plate)
                for i, c in zip(chosen, letters, strict=True):
                    chars[i] = c
                out.add("".join(chars))
    return out


def conflict_query(plate: str, *, except_person: str | None = None) -> Select[Plate, Person, Branch]:
    """The SQL prefilter: registered plates (with person and home branch) that may lie within the threshold of
    the normalised ``plate``; an ``IN`` list on the unique index of ``plates.plate``."""
    query = (select(Plate, Person, Branch).join(Person, Plate.person_id == Person.id)
             .join(Branch, Person.home_branch_id == Branch.id)
             .where(Plate.plate.in_(sorted(confusable_variants(plate)))))
    if except_person is not None:
        query = query.where(Plate.person_id != except_person)
    return query


def nearest_conflict(session: Session, plate: str, *,
                     except_person: str | None = None) -> tuple[Plate, Person, Branch, float] | None:
    """The registered plate (of another person than ``except_person``) nearest to ``plate`` within the
    confusion threshold, with its person, their home branch and the distance; None when the plate is free."""
    text = normalise(plate)
    query = conflict_query(text, except_person=except_person)
    best: tuple[Plate, Person, Branch, float] | None = None
    for found in session.execute(query):
        row, person, branch = found[0], found[1], found[2]
        distance = plate_distance(text, row.plate, MATCHER)
        if distance <= CONFUSION_THRESHOLD and (best is None or distance < best[3]):
            best = (row, person, branch, distance)
    return best


def ensure_plate_free(session: Session, plate: str, *, except_person: str | None = None) -> None:
    """None, or ConsoleError 409 ``plate_taken`` with ``match = {person_id, name, branch_code, plate,
    distance}`` when ``plate`` or a plate a reader confuses with it is registered to someone (other than
    ``except_person``). A caller showing it to someone who may not see that person drops ``person_id``."""
    hit = nearest_conflict(session, plate, except_person=except_person)
    if hit is None:
        return
    row, person, branch, distance = hit
    how = "已登记" if distance == 0 else "与之易混淆的车牌已登记"
    how_en = "is already registered" if distance == 0 else f"is easily misread as {row.plate}, which is registered"
    raise ConsoleError("plate_taken", f"车牌 {normalise(plate)} {how}（{row.plate}，{person.name}）/ "
                                      f"plate {normalise(plate)} {how_en} to {person.name}", 409,
                       match={"person_id": person.id, "name": person.name, "branch_code": branch.code,
                              "plate": row.plate, "distance": distance})


def hide_unseen_holder(session: Session, exc: ConsoleError, branch_ids: frozenset[int] | None) -> ConsoleError:
    """``exc`` with the holder's ``person_id`` removed from a ``plate_taken`` match when the holder's home branch
    is outside ``branch_ids`` (the caller's scope; None: all): the caller learns the plate is taken and by whom,
    not a link to a person they may not open."""
    match = exc.extra.get("match")
    if exc.code == "plate_taken" and isinstance(match, dict) and "person_id" in match and branch_ids is not None:
        branch_id = session.scalar(select(Branch.id).where(Branch.code == match.get("branch_code")))
        if branch_id not in branch_ids:
            exc.extra["match"] = {k: v for k, v in match.items() if k != "person_id"}
    return exc


def touch_person(session: Session, person: Person) -> int:
    """Append a gallery change (upsert) for ``person`` and set their version to it; returns the seq.

    Under the gallery lock (:func:`console.dupindex.lock_gallery`), like every writer of gallery changes, so
    that seqs become visible in order and a reader that has seen seq N never misses a smaller one later."""
    lock_gallery(session)
    change = GalleryChange(person_id=person.id, kind="upsert")
    session.add(change)
    session.flush()
    person.version = change.seq
    return change.seq


def add_plate(session: Session, person: Person, text: str) -> Plate:
    """Register ``text`` (validated, normalised) to ``person`` and record the gallery change; 422
    ``invalid_plate`` or 409 ``plate_taken`` (also when the person already has this very plate)."""
    plate, kind = validate_plate(text)
    ensure_plate_free(session, plate, except_person=person.id)
    own = session.scalar(select(Plate).where(Plate.person_id == person.id, Plate.plate == plate))
    if own is not None:
        raise ConsoleError("plate_taken", f"车牌 {plate} 已登记在此人名下 / plate {plate} is already registered "
                                          f"to {person.name}", 409,
                           match={"person_id": person.id, "name": person.name,
                                  "branch_code": person.home_branch.code, "plate": plate, "distance": 0.0})
    row = Plate(person_id=person.id, plate=plate, kind=kind)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent registration of the same plate won the race; the caller's
        # transaction is rolled back as the error leaves it
        raise ConsoleError("plate_taken", f"车牌 {plate} 刚被登记 / plate {plate} was just registered", 409,
                           match=None) from exc
    touch_person(session, person)
    return row


def remove_plate(session: Session, person: Person, plate_id: int) -> Plate:
    """Delete plate ``plate_id`` of ``person`` and record the gallery change; 404 when they have no such plate."""
    row = session.get(Plate, plate_id)
    if row is None or row.person_id != person.id:
        raise ConsoleError("not_found", f"no plate {plate_id} for this person", 404)
    session.delete(row)
    session.flush()
    touch_person(session, person)
    return row


def plate_json(row: Plate) -> dict[str, object]:
    return {"id": row.id, "plate": row.plate, "kind": row.kind}
