"""A box without a console records which uses a local enrolment's consent covers (``consent_covers``): with
``visit_template`` a confirmed visit's shot may join the person's template, as for a console's person; an
unknown code is refused naming it and nothing is written."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from edge.faces.visit_shots import consent_purposes, covers_visit_template
from edge.runtime import EdgeRuntime
from tests.edge.api.test_api_input import ENROL, FORM


def test_a_local_enrolment_records_the_uses_its_consent_covers(
        client: TestClient, runtime: EdgeRuntime, photo_bytes: Callable[[str], bytes]) -> None:
    # when a VIP is enrolled with a consent that also covers template improvement from confirmed live visits
    response = client.post("/api/persons", headers=ENROL, data={**FORM, "consent_covers": ["visit_template"]},
                           files={"photo": ("p.jpg", photo_bytes("obama.jpg"), "image/jpeg")})
    # then the box may add that person's confirmed visit shots
    assert response.status_code == 201, response.text
    vip = response.json()["id"]
    assert consent_purposes(runtime.store, vip) == {"enrolment", "visit_template"}
    assert covers_visit_template(runtime.store, vip)
    # and a person enrolled without it is covered for the enrolment only
    other = client.post("/api/persons", headers=ENROL, data={**FORM, "name": "拜登"},
                        files={"photo": ("p.jpg", photo_bytes("biden.jpg"), "image/jpeg")})
    assert other.status_code == 201, other.text
    assert consent_purposes(runtime.store, other.json()["id"]) == {"enrolment"}
    assert not covers_visit_template(runtime.store, other.json()["id"])


@pytest.mark.parametrize("covers", [["marketing"], ["visit_template", "face_sale"]])
def test_an_unknown_code_is_422_naming_it_and_nothing_is_written(
        client: TestClient, runtime: EdgeRuntime, photo_bytes: Callable[[str], bytes], covers: list[str]) -> None:
    response = client.post("/api/persons", headers=ENROL, data={**FORM, "consent_covers": covers},
                           files={"photo": ("p.jpg", photo_bytes("obama.jpg"), "image/jpeg")})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert (detail["code"], detail["field"]) == ("bad_consent_covers", "consent_covers")
    assert covers[-1] in detail["message"] and "visit_template" in detail["message"]
    assert runtime.store.count_persons() == 0
