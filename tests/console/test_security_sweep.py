"""A sweep over every route of the console's API, found at run time, so that a route added later is covered
without anyone remembering to add it here.

- Without a credential, with a wrong bearer token and with an expired session cookie, every route under
  ``/api`` answers 401, except sign-in itself and the API's own documentation (its shapes, no data).
- A regional manager (statistics only) gets 403 from every route that reads or writes persons, photos, plates,
  consents, imports, users, tokens or the audit. The route's path parameters name real rows (seeded here), so
  a 404 cannot hide a missing role check; when a route validates its body before it checks the role, the
  request is sent again with a plausible body built from the route's own OpenAPI schema.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from console.context import ConsoleContext
from console.db import utcnow
from console.security import CSRF_HEADER, SESSION_COOKIE, start_session
from console.tables import ApiToken, Consent, Edge, ImportJob, Person, Photo, Plate, User
from tests.console.conftest import add_branch, add_token, add_user

PUBLIC = {("POST", "/api/auth/login"),
          ("POST", "/api/sync/register"),  # an edge redeems a one-time code: the code is the credential (rate limited)
          ("GET", "/api/docs"), ("GET", "/api/openapi.json")}  # the API's description: shapes, no data
PRIVATE_NOUNS = {"persons", "photos", "plates", "consents", "imports", "users", "tokens", "audit", "search"}
PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
MIN_ROUTES = 10  # the auth, users and audit routes alone are 11


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str


def api_routes(app: FastAPI) -> list[Any]:
    """Every route whose path is under /api, from the app's routes (included routers too) at run time."""
    try:  # FastAPI >= 0.16x keeps included routers as branches; this walks them
        from fastapi.routing import iter_route_contexts
        routes: Iterator[Any] = iter(iter_route_contexts(app.routes))
    except ImportError:  # pragma: no cover - older FastAPI flattens app.routes itself
        routes = iter(app.routes)
    return [route for route in routes if (getattr(route, "path", None) or "").startswith("/api")]


def api_endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) of an HTTP route under /api."""
    found = {Endpoint(method, route.path) for route in api_routes(app) for method in (route.methods or ())
             if method != "HEAD"}
    return sorted(found, key=lambda e: (e.path, e.method))


@dataclass
class World:
    """Real rows for every kind of path parameter, and the credentials of the sweep."""

    ids: dict[str, str]
    admin_id: int
    rm_token: str
    expired_cookie: str
    expired_csrf: str

    def url(self, path: str) -> str:
        segments = path.split("/")
        out = []
        for i, segment in enumerate(segments):
            match = PARAM.fullmatch(segment)
            out.append(self.value(match.group(1), segments[i - 1]) if match else segment)
        return "/".join(out)

    def value(self, name: str, before: str) -> str:
        """A real id for ``{name}`` after the segment ``before`` (``/persons/{id}`` is a person)."""
        for noun in (before, name):
            for key, value in self.ids.items():
                if noun.lower().startswith(key):
                    return value
        return "1"


@pytest.fixture()
def world(console_ctx: ConsoleContext) -> World:
    b1 = add_branch(console_ctx, "B001", region="east")
    add_branch(console_ctx, "B002", region="west")
    admin_id = add_user(console_ctx, "root", "admin")
    add_token(console_ctx, admin_id, "root-script")
    rm_id = add_user(console_ctx, "regional", "regional_manager")
    person_id, photo_id, job_id = (secrets.token_hex(8) for _ in range(3))
    with console_ctx.db.transaction() as session:
        person = Person(id=person_id, name="王小明", role="vip", tier="gold", home_branch_id=b1, scope_kind="all",
                        created_by="root")
        session.add(person)
        session.flush()
        photo = Photo(id=photo_id, person_id=person_id, blob_key=f"photos/{photo_id}", sha256="0" * 64, width=640,
                      height=480, face_px=120.0, sharpness=50.0, embedding=b"sealed", model_id="dlib")
        plate = Plate(person_id=person_id, plate="沪A12345", kind="ordinary")
        consent = Consent(person_id=person_id, purpose="VIP greeting", given_on=date(2026, 11, 1), operator="李")
        job = ImportJob(id=job_id, created_by="root", filename="people.csv", status="done", total=0)
        edge = Edge(branch_id=b1, name="edge-1", token_hash=secrets.token_hex(32))
        session.add_all([photo, plate, consent, job, edge])
        session.flush()
        token_id = session.query(ApiToken.id).filter(ApiToken.user_id == admin_id).scalar()
        cookie, csrf = start_session(session, session.get_one(User, admin_id), utcnow() - timedelta(seconds=1))
        ids = {"person": person_id, "photo": photo_id, "plate": str(plate.id), "consent": str(consent.id),
               "cid": str(consent.id), "import": job_id, "job": job_id, "user": str(admin_id), "token": str(token_id),
               "branch": "B001", "code": "B001", "edge": str(edge.id)}
    return World(ids, admin_id, add_token(console_ctx, rm_id, "rm-script"), cookie, csrf)


def test_the_sweep_sees_the_whole_api(client: TestClient) -> None:
    endpoints = api_endpoints(client.app)  # type: ignore[arg-type]
    assert len(endpoints) >= MIN_ROUTES, endpoints
    mine = {Endpoint("POST", "/api/auth/login"), Endpoint("GET", "/api/me"), Endpoint("POST", "/api/users"),
            Endpoint("DELETE", "/api/tokens/{token_id}"), Endpoint("GET", "/api/audit")}
    assert mine <= set(endpoints)


def test_every_api_route_is_an_http_route_the_sweep_can_call(client: TestClient) -> None:
    """A WebSocket or a mounted app under /api would slip past the sweeps below: extend them before adding one."""
    unswept = [route.path for route in api_routes(client.app) if not route.methods]  # type: ignore[arg-type]
    assert unswept == []


def refusals(client: TestClient, world: World, attempt: Callable[[Endpoint], tuple[int, str]], expected: int,
             endpoints: list[Endpoint]) -> list[str]:
    wrong = []
    for endpoint in endpoints:
        client.cookies.clear()
        status, text = attempt(endpoint)
        if status != expected:
            wrong.append(f"{endpoint.method} {endpoint.path}: {status} {text[:160]}")
    return wrong


@pytest.mark.parametrize("credential", ["none", "wrong bearer token", "malformed authorization",
                                        "expired session cookie"])
def test_every_api_route_refuses_a_caller_without_a_valid_credential(client: TestClient, world: World,
                                                                     credential: str) -> None:
    endpoints = [e for e in api_endpoints(client.app) if (e.method, e.path) not in PUBLIC]  # type: ignore[arg-type]
    assert len(endpoints) >= MIN_ROUTES - 1

    def attempt(endpoint: Endpoint) -> tuple[int, str]:
        headers: dict[str, str] = {}
        if credential == "wrong bearer token":
            headers["Authorization"] = f"Bearer {secrets.token_urlsafe(32)}"
        elif credential == "malformed authorization":
            headers["Authorization"] = "Basic cm9vdDpwYXNzd29yZA=="
        elif credential == "expired session cookie":
            client.cookies.set(SESSION_COOKIE, world.expired_cookie)
            headers[CSRF_HEADER] = world.expired_csrf
        answer = client.request(endpoint.method, world.url(endpoint.path), headers=headers)
        return answer.status_code, answer.text

    assert refusals(client, world, attempt, 401, endpoints) == []


def sample(schema: dict[str, Any], spec: dict[str, Any], name: str = "") -> Any:
    """A plausible value for a JSON schema (required fields only): enough for a route to reach its role check."""
    if "$ref" in schema:
        return sample(spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], spec, name)
    for key in ("const", "default"):
        if schema.get(key) is not None:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [s for s in schema.get(key, []) if s.get("type") != "null"]
        if options:
            return sample(options[0], spec, name)
    kind = schema.get("type", "string")
    if kind == "object":
        required = set(schema.get("required", []))
        return {k: sample(v, spec, k) for k, v in schema.get("properties", {}).items() if k in required}
    if kind == "array":
        return [sample(schema.get("items", {}), spec, name)]
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    if schema.get("format") == "date" or name.endswith("date") or name.endswith("_on"):
        return "2026-11-01"
    plausible = {"name": "王小明", "role": "vip", "home_branch": "B001", "plate": "沪A12345", "code": "B003",
                 "region": "east", "timezone": "Asia/Shanghai", "username": "newuser", "purpose": "VIP greeting",
                 "password": "a long enough password", "scope_kind": "all", "operator": "李"}
    return plausible.get(name, "x" * max(1, int(schema.get("minLength", 1))))


def is_file(schema: dict[str, Any]) -> bool:
    options = [schema, *schema.get("anyOf", [])]
    return any(o.get("format") == "binary" or "contentMediaType" in o for o in options)


def plausible_request(spec: dict[str, Any], endpoint: Endpoint, photo: bytes) -> dict[str, Any]:
    """The keyword arguments of a request whose body matches the route's OpenAPI request body."""
    operation = spec["paths"].get(endpoint.path, {}).get(endpoint.method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return {"json": sample(content["application/json"]["schema"], spec)}
    for kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        if kind in content:
            schema = content[kind]["schema"]
            if "$ref" in schema:
                schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            required = set(schema.get("required", []))
            data, files = {}, {}
            for field, sub in schema.get("properties", {}).items():
                if is_file(sub):
                    if field in required or field == "photo":
                        files[field] = (f"{field}.jpg", photo, "image/jpeg")
                elif field in required:
                    data[field] = str(sample(sub, spec, field))
            return {"data": data, "files": files or None}
    return {}


def test_a_regional_manager_touches_no_person_photo_plate_consent_import_user_or_audit(
        client: TestClient, world: World, photo_bytes: Callable[[str], bytes]) -> None:
    app: FastAPI = client.app  # type: ignore[assignment]
    spec = app.openapi()
    private = [e for e in api_endpoints(app) if PRIVATE_NOUNS & set(e.path.split("/"))]
    assert {e.path.split("/")[2] for e in private} >= {"users", "tokens", "audit"}
    auth = {"Authorization": f"Bearer {world.rm_token}"}

    def attempt(endpoint: Endpoint) -> tuple[int, str]:
        url = world.url(endpoint.path)
        answer = client.request(endpoint.method, url, headers=auth)
        if answer.status_code == 422:  # the body was checked first: send a plausible one
            answer = client.request(endpoint.method, url, headers=auth,
                                    **plausible_request(spec, endpoint, photo_bytes("obama.jpg")))
        if answer.status_code == 403 and answer.json().get("error") != "forbidden":
            return 0, answer.text
        return answer.status_code, answer.text

    assert refusals(client, world, attempt, 403, private) == []
    assert client.get("/api/me", headers=auth).json()["role"] == "regional_manager"  # the token itself works
