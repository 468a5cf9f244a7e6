"""The console's web pages: static HTML (zh first, en option) that talk to the JSON API from the browser.

A page holds no data: it is served to anyone, and its script asks the API, which checks the caller. A browser
without a session cookie is sent to ``/login`` at once (``?next=`` brings it back); an expired session gets a
401 from the API and the page script does the same. Every page is self-contained: one shared script and one
style sheet from ``/static``, nothing fetched from outside (the Content-Security-Policy says so to the browser).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from console.security import SESSION_COOKIE

router = APIRouter(include_in_schema=False)

PAGES: dict[str, str] = {
    "/login": "login.html",
    "/persons": "persons.html",
    "/enrol": "enrol.html",
    "/import": "import.html",
    "/audit": "audit.html",
    "/branches": "branches.html",
    "/stats": "stats.html",
}
PERSON_PAGE = "person.html"
PERSON_ID = r"^[A-Za-z0-9_-]+$"  # what console/tables.py Person.id holds (String(32))
ASSETS: dict[str, str] = {"console.js": "application/javascript; charset=utf-8",
                          "console.css": "text/css; charset=utf-8"}
PUBLIC = frozenset({"/login"})

# Only this origin: scripts and styles of the page itself, images from the API (and a chosen file's blob: preview).
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


@cache
def static_text(name: str) -> str:
    """One file of ``console/web/static`` (read once per process)."""
    return resources.files("console.web").joinpath("static", name).read_text(encoding="utf-8")


def _page(request: Request, name: str, path: str) -> Response:
    if path not in PUBLIC and not request.cookies.get(SESSION_COOKIE):
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return Response(static_text(name), media_type="text/html; charset=utf-8", headers=HEADERS)


def _register(path: str, name: str) -> None:
    def serve(request: Request) -> Response:
        return _page(request, name, path)

    router.add_api_route(path, serve, methods=["GET"], name=f"page:{path}")


for _path, _name in PAGES.items():
    _register(_path, _name)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/persons", status_code=303)


@router.get("/persons/{person_id}")
def person_page(request: Request, person_id: Annotated[str, Path(pattern=PERSON_ID, max_length=64)]) -> Response:
    return _page(request, PERSON_PAGE, f"/persons/{person_id}")


@router.get("/static/{name}")
def asset(name: str) -> Response:
    if name not in ASSETS:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(static_text(name), media_type=ASSETS[name],
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})
