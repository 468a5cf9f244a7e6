"""The bank-wide duplicate check with real photos and the real engine: the same face under another name is 409
with the match, the live photo check and search by photo find the person (audited), a match outside the
caller's scope has no id, and two concurrent enrolments of one face cannot both succeed."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from console.app import create_app
from console.context import ConsoleContext
from console.tables import Person
from tests.console.test_persons_api import PhotoBytes, actions, bearer, blob_files, blurred, count, enrol, make_bank


def test_the_same_face_under_another_name_is_a_duplicate(console_ctx: ConsoleContext, client: TestClient,
                                                         photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    obama = enrol(client, bank.admin, photo_bytes("obama.jpg"), "Barack Obama").json()
    threshold = console_ctx.config.face.duplicate_threshold

    again = enrol(client, bank.admin, photo_bytes("obama2.jpg"), "Someone Else", plates="沪B54321")
    assert again.status_code == 409, again.text
    body = again.json()
    assert body["error"] == "duplicate" and body["photo"] == "photo"
    match = body["match"]
    assert match["person_id"] == obama["id"] and match["name"] == "Barack Obama" and match["role"] == "vip"
    assert (match["branch_code"], match["branch_name"]) == ("SH001", "上海第一支行")
    assert threshold <= match["score"] <= 1.0
    assert "Barack Obama" in body["detail"]
    assert count(console_ctx, Person) == 1 and len(blob_files(console_ctx)) == 1  # nothing of the refusal stays

    # an enroller of branch B is told who and where, but not the id of a person they may not see
    other = bearer(console_ctx, "beijing", "enroller", scope_kind="branches", branch_ids=(bank.b,))
    hidden = enrol(client, other, photo_bytes("obama2.jpg"), "Someone Else", home="BJ001")
    assert hidden.status_code == 409 and hidden.json()["match"]["name"] == "Barack Obama"
    assert "person_id" not in hidden.json()["match"]

    # a different face is no duplicate
    assert enrol(client, bank.admin, photo_bytes("biden.jpg"), "Joe Biden").status_code == 201


def test_photo_check_and_search_by_photo_find_the_person_and_are_audited(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    obama = enrol(client, bank.admin, photo_bytes("obama.jpg"), "Barack Obama").json()

    check = client.post("/api/photos/check", files={"photo": ("o2.jpg", photo_bytes("obama2.jpg"))},
                        headers=bank.admin)
    assert check.status_code == 200, check.text
    body = check.json()
    assert body["ok"] is True and body["face_px"] >= 80 and body["width"] > 0
    assert body["duplicate"]["person_id"] == obama["id"]
    bad = client.post("/api/photos/check", files={"photo": ("b.jpg", blurred(photo_bytes("obama2.jpg")))},
                      headers=bank.admin).json()
    assert bad["ok"] is False and bad["error"] == "blurred" and bad["detail"]

    found = client.post("/api/search/photo", files={"photo": ("o3.jpg", photo_bytes("obama3.jpg"))},
                        data={"k": "3"}, headers=bank.admin)
    assert found.status_code == 200, found.text
    [best] = found.json()["matches"]
    assert best["person_id"] == obama["id"] and best["name"] == "Barack Obama" and best["in_scope"] is True
    assert best["score"] >= console_ctx.config.face.duplicate_threshold - 0.1
    nobody = client.post("/api/search/photo", files={"photo": ("b.jpg", photo_bytes("biden.jpg"))},
                         headers=bank.admin).json()
    assert nobody["matches"] == []
    assert actions(console_ctx) == ["enrol", "photo_check", "photo_check", "search_by_photo", "search_by_photo"]


def test_two_concurrent_enrolments_of_one_face_do_not_both_succeed(console_ctx: ConsoleContext, client: TestClient,
                                                                   photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    photos = {"Obama A": photo_bytes("obama.jpg"), "Obama B": photo_bytes("obama2.jpg")}
    console_ctx.engine()  # the fixture's lazy engine is fetched from pytest on this thread, not on two at once
    start = threading.Barrier(2)
    codes: dict[str, int] = {}

    def run(name: str) -> None:
        start.wait()
        codes[name] = enrol(client, bank.admin, photos[name], name).status_code

    threads = [threading.Thread(target=run, args=(name,)) for name in photos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes.values()) == [201, 409]
    assert count(console_ctx, Person) == 1 and len(blob_files(console_ctx)) == 1


def test_a_second_replica_sees_an_enrolment_and_an_erasure_at_its_next_check(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    replica = ConsoleContext.open(console_ctx.config)  # another console process on the same database and data
    replica.engine = console_ctx.engine  # type: ignore[method-assign]
    try:
        with TestClient(create_app(replica.config, context=replica)) as other:
            probe = {"photo": ("o2.jpg", photo_bytes("obama2.jpg"))}
            assert other.post("/api/photos/check", files=probe, headers=bank.admin).json()["duplicate"] is None
            pid = enrol(client, bank.admin, photo_bytes("obama.jpg"), "Barack Obama").json()["id"]
            seen = other.post("/api/photos/check", files=probe, headers=bank.admin).json()["duplicate"]
            assert seen is not None and seen["person_id"] == pid
            assert client.delete(f"/api/persons/{pid}", headers=bank.admin).status_code == 200
            assert other.post("/api/photos/check", files=probe, headers=bank.admin).json()["duplicate"] is None
    finally:
        replica.close()


def test_an_enroller_may_confirm_a_shown_match_is_another_person_and_that_is_audited(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: PhotoBytes) -> None:
    # dlib scores some different East-Asian people above the threshold: the enroller who sees the match
    # (photo, name, branch) may say "another person"; only the ids the 409 showed are accepted
    bank = make_bank(console_ctx)
    obama = enrol(client, bank.admin, photo_bytes("obama.jpg"), "Barack Obama").json()
    refused = enrol(client, bank.admin, photo_bytes("obama2.jpg"), "Look-alike")
    assert refused.status_code == 409 and refused.json()["match"]["person_id"] == obama["id"]

    wrong_id = enrol(client, bank.admin, photo_bytes("obama2.jpg"), "Look-alike", distinct_from="0" * 32)
    assert wrong_id.status_code == 409  # confirming some other id does not pass this match

    confirmed = enrol(client, bank.admin, photo_bytes("obama2.jpg"), "Look-alike", distinct_from=obama["id"])
    assert confirmed.status_code == 201, confirmed.text
    assert count(console_ctx, Person) == 2
    overrides = [a for a in actions(console_ctx) if a == "duplicate_override"]
    assert overrides == ["duplicate_override"]

    # an enroller who may not see the match gets no id, so cannot confirm it: the refusal stands
    other = bearer(console_ctx, "beijing", "enroller", scope_kind="branches", branch_ids=(bank.b,))
    hidden = enrol(client, other, photo_bytes("obama3.jpg"), "Third", home="BJ001", distinct_from=obama["id"])
    assert hidden.status_code == 409 and "person_id" not in hidden.json()["match"]
