"""What the edge API accepts as text, and how it answers bad input: names are shown as stored, and
every validation error comes back as ``{"detail": {"code", "message", "field"}}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from edge.api.app import create_app
from edge.runtime import EdgeRuntime
from tests.edge.conftest import ADMIN_TOKEN, ENROLLER_TOKEN, LOBBY_TOKEN

ENROL = {"Authorization": f"Bearer {ENROLLER_TOKEN}"}
FORM = {"name": "王五", "tier": "白金", "consent": "2026-11-28 柜面书面同意，经办人 李四"}


def enrol(client: TestClient, photo: bytes, **form: str) -> Any:
    return client.post("/api/persons", headers=ENROL, data={**FORM, **form},
                       files={"photo": ("p.jpg", photo, "image/jpeg")})


# -- names -----------------------------------------------------------------------------------------
def test_a_name_with_bidi_and_zero_width_characters_is_stored_as_it_shows(
        client: TestClient, runtime: EdgeRuntime, photo_bytes: Callable[[str], bytes]) -> None:
    # given a name that a right-to-left override would show reversed, and a tier with zero-width spaces
    name, tier = "\u202e王\u200b五\u202c  ", "\u2067白\u200d金\u2069"
    # when the person is enrolled (a real photo with one face)
    response = enrol(client, photo_bytes("obama.jpg"), name=name, tier=tier,
                     consent="柜面书面同意，\u202e经办人 李四")
    # then what is stored, returned and later sent to terminals is the visible text only
    assert response.status_code == 201, response.text
    assert (response.json()["name"], response.json()["tier"]) == ("王五", "白金")
    [person] = runtime.store.list_persons()
    assert (person.name, person.tier, person.consent) == ("王五", "白金", "柜面书面同意，经办人 李四")


@pytest.mark.parametrize(("field", "value", "code"), [
    ("name", "\u202e\u200b\u2066", "bad_name"),  # only invisible characters: nothing to show
    ("name", "\u200b \t\u200d", "bad_name"),
    ("tier", "\ufeff\u202c", "bad_tier"),
    ("consent", "\u200b\u200b", "no_consent"),
])
def test_text_with_nothing_visible_is_refused(field: str, value: str, code: str, client: TestClient,
                                              runtime: EdgeRuntime, photo_bytes: Callable[[str], bytes]) -> None:
    response = enrol(client, photo_bytes("obama.jpg"), **{field: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["code"] == code
    assert response.json()["detail"]["field"] == field
    assert runtime.store.count_persons() == 0


# -- the shape of validation errors -----------------------------------------------------------------
@pytest.mark.parametrize(("form", "code", "field"), [
    ({"name": "名" * 129}, "bad_name", "name"),
    ({"name": ""}, "bad_name", "name"),
    ({"tier": "T" * 33}, "bad_tier", "tier"),
    ({"tier": ""}, "bad_tier", "tier"),
    ({"consent": "c" * 2001}, "no_consent", "consent"),
    ({"consent": ""}, "no_consent", "consent"),
])
def test_bad_form_fields_are_422_with_the_readme_code_and_the_field(
        form: dict[str, str], code: str, field: str, client: TestClient, runtime: EdgeRuntime) -> None:
    # when a form field breaks its declared limits (checked before the photo is looked at)
    response = enrol(client, b"not looked at", **form)
    # then the error names the README's code and the field, not FastAPI's list
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, dict), detail
    assert (detail["code"], detail["field"]) == (code, field)
    assert field in detail["message"]
    assert runtime.store.count_persons() == 0


def test_a_missing_photo_is_a_bad_request_naming_the_field(client: TestClient) -> None:
    response = client.post("/api/persons", headers=ENROL, data=FORM)
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "bad_request"
    assert response.json()["detail"]["field"] == "photo"


@pytest.mark.parametrize(("method", "path", "kwargs", "token", "field", "code"), [
    ("GET", "/api/alerts", {"params": {"limit": 0}}, LOBBY_TOKEN, "limit", "bad_request"),
    ("GET", "/api/alerts", {"params": {"since": "x"}}, LOBBY_TOKEN, "since", "bad_request"),
    ("POST", "/api/persons/p1/plates", {"json": {}}, ENROLLER_TOKEN, "plate", "bad_plate"),
    ("POST", "/api/persons/p1/plates", {"json": {"plate": "A" * 33}}, ENROLLER_TOKEN, "plate", "bad_plate"),
    ("POST", "/api/persons/p1/plates", {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
     ENROLLER_TOKEN, "body", "bad_request"),
    ("POST", "/api/clips/c1/verdict", {"json": {"verdict": "great"}}, ADMIN_TOKEN, "verdict", "bad_request"),
    ("POST", "/api/clips/c1/hold", {"json": {"hold": True, "by": "x"}}, ADMIN_TOKEN, "by", "bad_request"),
    ("GET", "/api/clips", {"params": {"limit": 501}}, ADMIN_TOKEN, "limit", "bad_request"),
])
def test_every_route_answers_validation_errors_in_one_shape(
        method: str, path: str, kwargs: dict[str, Any], token: str, field: str, code: str,
        client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    response = client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert (detail["code"], detail["field"]) == (code, field)
    assert detail["message"]


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/api/nothing-here", 404, "not_found"),
    ("PUT", "/api/persons", 405, "method_not_allowed"),
])
def test_framework_errors_come_in_the_same_shape(method: str, path: str, status: int, code: str,
                                                  client: TestClient) -> None:
    response = client.request(method, path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == status
    assert response.json()["detail"]["code"] == code


@pytest.mark.parametrize(("path", "params", "code"), [
    ("/api/audit", {"offset": 2**70}, "bad_request"),  # past SQLite's 64-bit INTEGER (found by fuzzing)
    ("/api/clips", {"offset": 2**63}, "bad_request"),
    ("/api/clips", {"date_to": "9999-12-31"}, "bad_date"),  # the next midnight is past the calendar
    ("/api/clips", {"date_from": "0001-01-01"}, "bad_date"),
    ("/api/stats", {"date_from": "9999-12-31T23:59:59-14:00"}, "bad_date"),
])
def test_values_beyond_what_storage_or_the_calendar_holds_are_422_not_500(
        path: str, params: dict[str, Any], code: str, runtime: EdgeRuntime) -> None:
    with TestClient(create_app(runtime, start_cameras=False), raise_server_exceptions=False) as client:
        response = client.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["code"] == code
