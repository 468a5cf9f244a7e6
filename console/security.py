"""Who is calling: a browser session (cookie + CSRF token) or a script's API token, resolved to a
:class:`Principal` with a role and a branch scope.

- Passwords are hashed with argon2id (argon2-cffi's defaults).
- The session cookie is HttpOnly and SameSite=Strict; only its sha256 is stored. An unsafe method (POST,
  PUT, PATCH, DELETE) on a session must carry the session's CSRF token in ``X-CSRF-Token`` (the page reads
  it from the non-HttpOnly CSRF cookie or from the sign-in answer); only its sha256 is stored.
- An API token (``Authorization: Bearer …``) acts as its user, with the user's role and scope; it needs no
  CSRF token because a browser never sends it by itself.
- A user's scope: ``all`` branches, one ``region`` (resolved at each request, so a branch added to the region
  later is in scope), or a list of ``branches``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Select, String, bindparam, cast, func, select, update
from sqlalchemy.orm import Session

from console.db import utcnow
from console.errors import ConsoleError
from console.tables import ApiToken, Branch, User, UserBranch, WebSession

ROLES = ("admin", "enroller", "compliance", "branch_it", "regional_manager")
SCOPE_KINDS = ("all", "region", "branches")
SESSION_COOKIE = "sb_console_session"
CSRF_COOKIE = "sb_console_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)  # how stale an API token's last_used_at may be

class _Passwords:
    """The argon2id hasher (argon2-cffi's defaults: RFC 9106's low-memory profile, 64 MiB, 3 passes) and a hash
    to verify against when the user does not exist, so that such a check takes as long as a real one."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher
        self.dummy = hasher.hash(secrets.token_urlsafe(16))


_passwords = _Passwords(PasswordHasher())


def use_password_hasher(hasher: PasswordHasher) -> None:
    """Hash new passwords with ``hasher`` from now on (stored hashes carry their own parameters and still verify).
    The test suite uses argon2's smallest parameters, which cost well under a millisecond instead of ~0.1 s."""
    global _passwords
    _passwords = _Passwords(hasher)


def hash_password(password: str) -> str:
    return _passwords.hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _passwords.hasher.verify(stored or _passwords.dummy, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_secret() -> str:
    """A fresh random credential (256 bits, url-safe)."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What is stored of a credential: its sha256, hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: str
    via: str  # "session" | "token"
    branch_ids: frozenset[int] | None  # None: every branch
    ip: str = ""
    token_name: str = ""
    session_id: str = ""

    @property
    def actor(self) -> str:
        """How the audit names this caller: the user, and the token when a script acted."""
        return f"{self.username}/token:{self.token_name}" if self.via == "token" else self.username

    def sees_branch(self, branch_id: int | None) -> bool:
        return self.branch_ids is None or (branch_id is not None and branch_id in self.branch_ids)

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise ConsoleError("forbidden", f"this needs the role {' or '.join(roles)} (you are {self.role})", 403)

    def require_branch(self, branch_id: int | None) -> None:
        if not self.sees_branch(branch_id):
            raise ConsoleError("forbidden", "that branch is outside your scope", 403)


def scope_of(session: Session, user: User) -> frozenset[int] | None:
    """The branch ids ``user`` may see (None: all). An unknown scope kind sees nothing."""
    if user.scope_kind == "all":
        return None
    if user.scope_kind == "region":
        ids = session.scalars(select(Branch.id).where(Branch.region == (user.scope_region or ""))).all()
        return frozenset(ids)
    if user.scope_kind == "branches":
        return frozenset(b.id for b in user.branches)
    return frozenset()


def principal_for(session: Session, user: User, via: str, *, ip: str = "", token_name: str = "",
                  session_id: str = "") -> Principal:
    return Principal(user.id, user.username, user.role, via, scope_of(session, user), ip, token_name, session_id)


def authenticate(session: Session, *, method: str, authorization: str | None, cookie: str | None,
                 csrf_header: str | None, ip: str, now: datetime | None = None) -> Principal:
    """The caller of a request, or :class:`ConsoleError` 401 (no or bad credential) / 403 (CSRF)."""
    now = now or utcnow()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ConsoleError("unauthorized", "the Authorization header must be 'Bearer <token>'", 401)
        return _token_caller(session, digest(value.strip()), ip, now)
    if cookie:
        web = session.get(WebSession, digest(cookie))
        if web is None or web.expires_at <= now:
            raise ConsoleError("unauthorized", "the session has ended; sign in again", 401)
        user = session.get(User, web.user_id)
        if user is None or not user.active:
            raise ConsoleError("unauthorized", "the user is disabled", 401)
        if method.upper() not in SAFE_METHODS and not (csrf_header and same_secret(digest(csrf_header),
                                                                                    web.csrf_hash)):
            raise ConsoleError("csrf", "the form's CSRF token is missing or wrong; reload the page", 403)
        return principal_for(session, user, "session", ip=ip, session_id=web.id)
    raise ConsoleError("unauthorized", "sign in, or send an API token (Authorization: Bearer …)", 401)


@functools.cache
def token_statement() -> Select[Any]:
    """The user of an API token, in one indexed query (the token by its digest ``:token_hash``, its user, the
    user's scope as joined ids): built once, since building it costs more than running it. Its columns are
    :data:`TOKEN_COLUMNS`; a caller may add its own after them (the persons list adds its version)."""
    user_branches = select(func.aggregate_strings(cast(UserBranch.branch_id, String), ",")).where(
        UserBranch.user_id == User.id).scalar_subquery()
    region_branches = select(func.aggregate_strings(cast(Branch.id, String), ",")).where(
        Branch.region == User.scope_region).scalar_subquery()
    return (select(ApiToken.id, ApiToken.name, ApiToken.revoked_at, ApiToken.last_used_at, User.id, User.username,
                   User.role, User.active, User.scope_kind, user_branches, region_branches)
            .join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == bindparam("token_hash")))


TOKEN_COLUMNS = 11


def token_needs_touch(row: Sequence[Any], now: datetime) -> bool:
    """Whether the token of ``row`` (of :func:`token_statement`) is due its ``last_used_at`` write."""
    last_used = row[3]
    return last_used is None or now - last_used > TOKEN_TOUCH_INTERVAL


def token_principal(row: Sequence[Any] | None, ip: str) -> Principal:
    """The caller of a row of :func:`token_statement` (None: no such token); 401 when revoked or disabled."""
    if row is None or row[2] is not None:
        raise ConsoleError("unauthorized", "invalid or revoked API token", 401)
    _token_id, token_name, _revoked, _last_used, user_id, username, role, active, kind, listed, region = \
        row[:TOKEN_COLUMNS]
    if not active:
        raise ConsoleError("unauthorized", "the token's user is disabled", 401)
    ids = {"all": None, "region": region, "branches": listed}.get(kind, "")
    scope = None if kind == "all" else frozenset(int(i) for i in (ids or "").split(",") if i)
    return Principal(user_id, username, role, "token", scope, ip, token_name)


def _token_caller(session: Session, token_hash: str, ip: str, now: datetime) -> Principal:
    """The user of an API token (:func:`token_statement`): scripts call often, and each request asks again, so
    a revoke or a disabled user counts from the next one."""
    row = session.execute(token_statement(), {"token_hash": token_hash}).one_or_none()
    caller = token_principal(row, ip)
    if row is not None and token_needs_touch(row, now):
        # at most once a minute: a write per request would serialise readers
        session.execute(update(ApiToken).where(ApiToken.id == row[0]).values(last_used_at=now))
    return caller


def start_session(session: Session, user: User, expires_at: datetime) -> tuple[str, str]:
    """A new browser session for ``user``: (session cookie value, CSRF token); only their hashes are stored."""
    cookie, csrf = new_secret(), new_secret()
    session.add(WebSession(id=digest(cookie), user_id=user.id, csrf_hash=digest(csrf), expires_at=expires_at))
    return cookie, csrf
