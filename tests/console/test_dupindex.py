"""The duplicate index on synthetic templates stored in the real database (both backends): it finds the right
person among thousands, and two replicas over one database stay current with each other's changes."""

from __future__ import annotations

import secrets

import numpy as np
import pytest
from sqlalchemy import insert

from console.context import ConsoleContext
from console.dupindex import DuplicateIndex, TemplateCipher, lock_gallery
from console.tables import GalleryChange, Person
from tests.console.conftest import add_branch

DIM = 128
MODEL = "synthetic-128"


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def _store(ctx: ConsoleContext, branch_id: int, vectors: np.ndarray, *, model_id: str = MODEL) -> list[str]:
    """Persons with these templates (encrypted as enrolment stores them) and one gallery change each."""
    cipher = TemplateCipher(ctx.key)
    ids = [secrets.token_hex(16) for _ in range(len(vectors))]
    rows = [{"id": pid, "name": f"p{i}", "role": "vip", "tier": "gold", "notes": "", "home_branch_id": branch_id,
             "scope_kind": "all", "template": cipher.encrypt(v), "model_id": model_id, "version": 0,
             "created_by": "test"} for i, (pid, v) in enumerate(zip(ids, vectors, strict=True))]
    with ctx.db.transaction() as session:
        lock_gallery(session)
        session.execute(insert(Person), rows)
        session.execute(insert(GalleryChange), [{"person_id": pid, "kind": "upsert"} for pid in ids])
    return ids


def _change(ctx: ConsoleContext, person_id: str, kind: str, vector: np.ndarray | None = None) -> None:
    with ctx.db.transaction() as session:
        lock_gallery(session)
        person = session.get_one(Person, person_id)
        if kind == "erase":
            session.delete(person)
        else:
            assert vector is not None
            person.template = TemplateCipher(ctx.key).encrypt(vector)
        session.add(GalleryChange(person_id=person_id, kind=kind))


def test_finds_the_right_person_among_thousands_and_ignores_other_models(console_ctx: ConsoleContext) -> None:
    rng = np.random.default_rng(7)
    branch = add_branch(console_ctx, "SH001")
    vectors = _unit(rng, 3000)
    ids = _store(console_ctx, branch, vectors)
    other_model = _store(console_ctx, branch, vectors[:1], model_id="another-model")  # the same vector, other model
    index = DuplicateIndex(console_ctx.db, TemplateCipher(console_ctx.key), MODEL, DIM)

    for target in (0, 1234, 2999):
        noisy = vectors[target] + 0.02 * _unit(rng, 1)[0]
        hits = index.search(noisy / np.linalg.norm(noisy), k=3)
        assert hits[0].person_id == ids[target]
        assert hits[0].score > 0.99 > hits[1].score
        assert hits[0].score >= hits[1].score >= hits[2].score
    assert len(index) == 3000
    assert other_model[0] not in {h.person_id for h in index.search(vectors[0], k=5)}
    assert index.search(vectors[5], k=1, exclude=ids[5])[0].person_id != ids[5]


def test_two_replicas_see_each_others_changes_at_their_next_search(console_ctx: ConsoleContext) -> None:
    rng = np.random.default_rng(11)
    branch = add_branch(console_ctx, "SH001")
    vectors = _unit(rng, 200)
    ids = _store(console_ctx, branch, vectors)
    replica_a = DuplicateIndex(console_ctx.db, TemplateCipher(console_ctx.key), MODEL, DIM)
    replica_b = DuplicateIndex(console_ctx.db, TemplateCipher(console_ctx.key), MODEL, DIM)
    assert replica_a.search(vectors[3])[0].person_id == ids[3]
    assert replica_b.search(vectors[3])[0].person_id == ids[3]

    _change(console_ctx, ids[3], "erase")  # "on replica A"
    new_face = _unit(rng, 1)[0]
    _change(console_ctx, ids[10], "upsert", new_face)  # person 10's template changes
    fresh = _store(console_ctx, branch, _unit(rng, 1))  # a newcomer

    for replica in (replica_a, replica_b):
        assert replica.search(vectors[3])[0].person_id != ids[3]  # the erased face is gone everywhere
        assert replica.search(vectors[3])[0].score < 0.5
        assert replica.search(new_face)[0].person_id == ids[10]
        assert replica.search(vectors[10])[0].person_id != ids[10]
        assert fresh[0] in {h.person_id for h in replica.search(_unit(rng, 1)[0], k=300)}
        assert len(replica) == 200
        # the row that moved into the erased one's place is still found as itself
        assert all(replica.search(vectors[i])[0].person_id == ids[i] for i in range(200) if i not in (3, 10))


def test_refuses_an_embedding_of_another_dimension(console_ctx: ConsoleContext) -> None:
    index = DuplicateIndex(console_ctx.db, TemplateCipher(console_ctx.key), MODEL, DIM)
    with pytest.raises(ValueError, match="512-d"):
        index.search(np.ones(512, np.float32))
    assert index.search(np.ones(DIM, np.float32) / np.sqrt(DIM)) == []
