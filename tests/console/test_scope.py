"""Branch scope on persons, with real enrolments on both backends: an enroller of branch A neither lists, reads,
changes nor fetches the photos of branch B's persons (404: their ids are not confirmed) and cannot enrol into
branch B (403); roles that may not see faces get no photo."""

from __future__ import annotations

from fastapi.testclient import TestClient

from console.context import ConsoleContext
from console.tables import Person
from tests.console.test_persons_api import PhotoBytes, bearer, count, enrol, make_bank


def test_an_enroller_of_branch_a_cannot_see_or_touch_branch_b(console_ctx: ConsoleContext, client: TestClient,
                                                              photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    in_b = enrol(client, bank.admin, photo_bytes("biden.jpg"), "Joe Biden", home="BJ001", plates="京A88888").json()
    pid, photo_id = in_b["id"], in_b["photos"][0]["id"]
    enroller_a = bearer(console_ctx, "sh-enroller", "enroller", scope_kind="branches", branch_ids=(bank.a,))

    listed = client.get("/api/persons", headers=enroller_a).json()
    assert listed == {"items": [], "total": 0, "total_exact": True}
    assert client.get("/api/persons", params={"q": "Biden"}, headers=enroller_a).json()["total"] == 0
    assert client.get("/api/persons", params={"q": "88888"}, headers=enroller_a).json()["total"] == 0
    for url in (f"/api/persons/{pid}", f"/api/persons/{pid}/photos/{photo_id}",
                f"/api/persons/{pid}/photos/{photo_id}?thumb=1"):
        res = client.get(url, headers=enroller_a)
        assert (res.status_code, res.json()["error"]) == (404, "not_found"), url
    assert client.patch(f"/api/persons/{pid}", json={"name": "x"}, headers=enroller_a).status_code == 404
    assert client.delete(f"/api/persons/{pid}/photos/{photo_id}", headers=enroller_a).status_code == 404
    assert client.post(f"/api/persons/{pid}/photos", files={"photo": ("b.jpg", photo_bytes("biden.jpg"))},
                       headers=enroller_a).status_code == 404
    # an id that does not exist answers exactly the same
    assert client.get("/api/persons/" + "0" * 32, headers=enroller_a).json()["error"] == "not_found"

    refused = enrol(client, enroller_a, photo_bytes("obama.jpg"), "Barack Obama", home="BJ001")
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert count(console_ctx, Person) == 1

    mine = enrol(client, enroller_a, photo_bytes("obama.jpg"), "Barack Obama", home="SH001")
    assert mine.status_code == 201, mine.text
    assert [p["name"] for p in client.get("/api/persons", headers=enroller_a).json()["items"]] == ["Barack Obama"]
    assert [p["name"] for p in client.get("/api/persons", headers=bank.admin).json()["items"]] == [
        "Barack Obama", "Joe Biden"]  # newest change first


def test_a_staff_members_scope_is_their_home_branch_and_branch_it_sees_no_faces(
        console_ctx: ConsoleContext, client: TestClient, photo_bytes: PhotoBytes) -> None:
    bank = make_bank(console_ctx)
    staff = enrol(client, bank.admin, photo_bytes("obama.jpg"), "王柜员", role="staff", tier="", scope_kind="all")
    assert staff.status_code == 201, staff.text
    assert staff.json()["scope"] == {"kind": "branches", "region": None, "branches": ["SH001"]}
    pid, photo_id = staff.json()["id"], staff.json()["photos"][0]["id"]
    widened = client.patch(f"/api/persons/{pid}", json={"scope_kind": "all"}, headers=bank.admin).json()
    assert widened["scope"]["kind"] == "branches"

    branch_it = bearer(console_ctx, "it", "branch_it", scope_kind="branches", branch_ids=(bank.a,))
    row = client.get("/api/persons", headers=branch_it).json()["items"][0]
    assert row["id"] == pid and row["thumbnail_url"] is None
    assert client.get(f"/api/persons/{pid}", headers=branch_it).json()["photos"][0]["url"] is None
    assert client.get(f"/api/persons/{pid}/photos/{photo_id}", headers=branch_it).status_code == 403
    assert client.post(f"/api/persons/{pid}/photos", files={"photo": ("o.jpg", b"x")},
                       headers=branch_it).status_code == 403
