"""Pairing a tablet with the box, instead of a token in its URLs.

An admin (``smartbranch pair``, or ``POST /api/pairings``) makes a short one-time code for a named tablet; it
is good for :data:`CODE_TTL_S` and for one tablet. The tablet's page sends the code to ``POST /api/pair`` and
gets a session cookie (:data:`COOKIE`: HttpOnly, so no script reads it; SameSite=Strict, so no other site's
page sends it; Path=/) bound to the lobby manager's role and this branch. From then on the WebSocket, the
photos and the snapshots authenticate by that cookie, and no token appears in any URL the page requests.

Only hashes are stored (of the code and of the cookie's secret). Pairings are listed and revoked by an admin
(``GET /api/pairings``, ``DELETE /api/pairings/{id}``, or ``smartbranch pairings``); a revoked tablet's socket
is closed at its next heartbeat, and every later request of it is refused. A wrong code counts as a refusal
of its address, like a wrong token (429 after a burst).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from edge.store.db import Store
from edge.store.tables import PairingRow

COOKIE = "sb_pair"
COOKIE_MAX_AGE_S = 400 * 24 * 3600  # browsers cap cookies at 400 days
CODE_TTL_S = 600
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud and typed on a tablet
CODE_LENGTH = 8  # 40 bits; with the refusal throttle and ten minutes, not guessable
PAIRED_ROLE = "lobby_manager"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalise_code(code: str) -> str:
    """What was typed, as issued: upper case, without spaces and dashes."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def shown_code(code: str) -> str:
    """ABCD-EFGH: easier to read out and type."""
    return f"{code[:4]}-{code[4:]}"


@dataclass(frozen=True, slots=True)
class IssuedCode:
    pairing_id: str
    name: str
    code: str  # as shown, ABCD-EFGH
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Pairing:
    id: str
    name: str
    role: str
    state: str  # "waiting" (code not redeemed yet), "expired" (code never redeemed), "paired", "revoked"
    created_at: datetime
    paired_at: datetime | None
    revoked_at: datetime | None


def _state(row: PairingRow, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.secret_sha256 is not None:
        return "paired"
    return "waiting" if row.code_expires_at > now else "expired"


class Pairings:
    """The box's paired tablets, kept in its store. Any thread; each call is one transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def issue(self, name: str, ttl_s: float = CODE_TTL_S) -> IssuedCode:
        now = datetime.now(UTC)
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        row = PairingRow(id=uuid.uuid4().hex, name=name, role=PAIRED_ROLE, code_sha256=_digest(code),
                         code_expires_at=now + timedelta(seconds=ttl_s), created_at=now)
        with self._store.session() as s, s.begin():
            s.add(row)
        return IssuedCode(row.id, name, shown_code(code), row.code_expires_at)

    def redeem(self, code: str) -> tuple[Pairing, str] | None:
        """The pairing and its new session secret, for a code that is waiting; None otherwise. One use only."""
        digest = _digest(normalise_code(code))
        now = datetime.now(UTC)
        secret = secrets.token_urlsafe(32)
        with self._store.session() as s, s.begin():
            row = s.scalar(select(PairingRow).where(PairingRow.code_sha256 == digest))
            if row is None or _state(row, now) != "waiting":
                return None
            row.code_sha256 = None  # used up
            row.secret_sha256 = _digest(secret)
            row.paired_at = now
            return self._pairing(row, now), secret

    def holder(self, secret: str | None) -> Pairing | None:
        """The live pairing whose cookie carries ``secret``; None for an unknown or revoked one."""
        if not secret:
            return None
        digest = _digest(secret)
        with self._store.session() as s:
            row = s.scalar(select(PairingRow).where(PairingRow.secret_sha256 == digest))
            if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_sha256 or "", digest):
                return None
            return self._pairing(row, datetime.now(UTC))

    def list(self) -> list[Pairing]:
        now = datetime.now(UTC)
        with self._store.session() as s:
            rows = s.scalars(select(PairingRow).order_by(PairingRow.created_at.desc())).all()
            return [self._pairing(r, now) for r in rows]

    def revoke(self, pairing_id: str) -> Pairing | None:
        """Revoke a pairing (or a code not yet used); None when there is no such pairing."""
        now = datetime.now(UTC)
        with self._store.session() as s, s.begin():
            row = s.get(PairingRow, pairing_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = now
                row.code_sha256 = None
            return self._pairing(row, now)

    @staticmethod
    def _pairing(row: PairingRow, now: datetime) -> Pairing:
        return Pairing(row.id, row.name, row.role, _state(row, now), row.created_at, row.paired_at, row.revoked_at)
