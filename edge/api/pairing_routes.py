"""The pairing endpoints (see :mod:`edge.api.pairing`): redeem a code for the cookie, and an admin's list, issue
and revoke.

No ``from __future__ import annotations``: FastAPI resolves the ``Admin`` dependency alias at runtime.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from alerts.text import display_text
from edge.api.auth import Gate, Principal, client_source
from edge.api.pairing import COOKIE, COOKIE_MAX_AGE_S, PAIRED_ROLE, Pairing, Pairings


class PairBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=32, description="The code shown by `smartbranch pair`, ABCD-EFGH.")


class PairingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="Which tablet, e.g. 大堂平板1.")


class PairingPublic(BaseModel):
    id: str = Field(description="Pairing id (revoke it by this).")
    name: str = Field(description="Which tablet.")
    role: str = Field(description="The role its cookie carries (lobby_manager).")
    state: str = Field(description="waiting (code not used yet), expired, paired or revoked.")
    created_at: datetime
    paired_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, p: Pairing) -> "PairingPublic":
        return cls(id=p.id, name=p.name, role=p.role, state=p.state, created_at=p.created_at, paired_at=p.paired_at,
                   revoked_at=p.revoked_at)


class IssuedPublic(BaseModel):
    id: str
    name: str
    code: str = Field(description="The one-time code, ABCD-EFGH; shown once.")
    expires_at: datetime


def paired_principal(pairings: Pairings, branch_id: str, secret: str | None) -> Principal | None:
    """The lobby manager a pairing cookie stands for; None for no cookie, an unknown or a revoked one."""
    holder = pairings.holder(secret)
    if holder is None:
        return None
    return Principal(holder.name, frozenset({holder.role}), frozenset({branch_id}))


def pairing_router(pairings: Pairings, gate: Gate) -> APIRouter:
    router = APIRouter()
    Admin = Annotated[Principal, Depends(gate.require("admin"))]

    @router.post("/api/pair")
    def pair(body: PairBody, request: Request) -> JSONResponse:
        """Redeem a one-time code: the answer sets the tablet's HttpOnly, SameSite=Strict session cookie."""
        source = client_source(request)
        wait = gate.refusals.retry_after(source)
        if wait is not None:
            raise HTTPException(429, {"code": "too_many_refusals", "message": "too many refused requests"},
                                headers={"Retry-After": str(int(wait) + 1)})
        redeemed = pairings.redeem(body.code)
        if redeemed is None:
            gate.refusals.refused(source=source, actor="anonymous", status=401, reason="wrong or used pairing code",
                                  action="pair", where="POST /api/pair")
            raise HTTPException(401, {"code": "bad_code", "message": "the pairing code is wrong, used or expired"})
        pairing, secret = redeemed
        response = JSONResponse({"id": pairing.id, "name": pairing.name, "role": PAIRED_ROLE})
        response.set_cookie(COOKIE, secret, max_age=COOKIE_MAX_AGE_S, path="/", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    @router.post("/api/pairings", response_model=IssuedPublic, status_code=201)
    def issue(body: PairingCreate, _: Admin) -> IssuedPublic:
        name = display_text(body.name)
        if not name:
            raise HTTPException(422, {"code": "bad_name", "message": "the name shows nothing", "field": "name"})
        issued = pairings.issue(name)
        return IssuedPublic(id=issued.pairing_id, name=issued.name, code=issued.code, expires_at=issued.expires_at)

    @router.get("/api/pairings", response_model=list[PairingPublic])
    def list_pairings(_: Admin) -> list[PairingPublic]:
        return [PairingPublic.of(p) for p in pairings.list()]

    @router.delete("/api/pairings/{pairing_id}", response_model=PairingPublic)
    def revoke(pairing_id: str, _: Admin) -> PairingPublic:
        revoked = pairings.revoke(pairing_id)
        if revoked is None:
            raise HTTPException(404, {"code": "not_found", "message": f"no pairing {pairing_id}"})
        return PairingPublic.of(revoked)

    return router
