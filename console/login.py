"""Sign-in with a password, throttled per user name and per client address, in the database.

The rule, in plain words:

- Every attempt is a :class:`~console.tables.LoginAttempt` row and an audit row (``login_ok``, ``login_failed``
  or ``login_locked``; never the password). Because both live in the database, every console replica behind the
  load balancer sees the same count.
- When a user name already has ``max_failures`` failed attempts within ``failure_window_s`` (counted since its
  last success and since its last lock-out ended), the next attempt is refused with 429 ``locked``, even with the
  right password, and the name is locked for ``lockout_s`` (``User.locked_until``). A lock-out that has ended
  starts the count again, so an attacker gets ``max_failures`` guesses per ``lockout_s``. An admin who sets a
  new password or enables the user again ends the lock-out at once (:func:`console.users.update_user`).
- A refused attempt is stored and counted too: an address that keeps hammering a locked name is itself throttled.
- One client address trying many names (password spraying) is limited the same way by ``max_address_failures``,
  which is larger because the users of a branch may all reach the console through one proxy; a success does
  not reset the address's count.
- A name nobody has is counted and locked exactly like a real one (the lock is the ``login_locked`` audit row,
  which carries its end), and an unknown name, a wrong password and a disabled user all get the same 401 after
  the same argon2 work (:func:`~console.security.verify_password` checks a dummy hash), so neither the status,
  the Retry-After nor the time tells whether a user exists.

Two replicas answering two attempts at the same instant may each let one through at the limit; the limit is a
brake on guessing, not a counter that must be exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from console.audit import record
from console.config import AuthConfig
from console.db import utcnow
from console.errors import ConsoleError
from console.security import principal_for, verify_password
from console.tables import AuditRow, LoginAttempt, User

LOCK_ACTION = "login_locked"
KEEP_ATTEMPTS = timedelta(days=1)  # rows older than this (and than the window) are pruned for the name/address
MAX_NAME = 64


@dataclass(frozen=True)
class LoginOutcome:
    """A signed-in user, or the refusal to raise once the attempt's rows are committed."""

    user: User | None
    refusal: ConsoleError | None


def normalise_name(username: str) -> str:
    """How a typed user name is compared and stored: trimmed, lower case, at most 64 characters."""
    return username.strip().lower()[:MAX_NAME]


def _lock_end(session: Session, kind: str, key: str) -> datetime | None:
    """When the newest lock-out of ``key`` (a user name or an address) ends, from its ``login_locked`` row."""
    row = session.scalar(select(AuditRow).where(AuditRow.action == LOCK_ACTION, AuditRow.object_type == kind,
                                                AuditRow.object_id == key[:MAX_NAME])
                         .order_by(AuditRow.id.desc()).limit(1))
    if row is None or not isinstance(row.detail, dict) or not isinstance(row.detail.get("until"), str):
        return None
    try:
        return datetime.fromisoformat(row.detail["until"])
    except ValueError:
        return None


def _failures_since(session: Session, since: datetime, *, username: str | None = None, ip: str | None = None) -> int:
    query = select(func.count(LoginAttempt.id)).where(LoginAttempt.ok.is_(False), LoginAttempt.at > since)
    if username is not None:
        query = query.where(LoginAttempt.username == username)
    if ip is not None:
        query = query.where(LoginAttempt.ip == ip)
    return int(session.scalar(query) or 0)


def _last_success(session: Session, username: str) -> datetime | None:
    return session.scalar(select(func.max(LoginAttempt.at)).where(LoginAttempt.username == username,
                                                                  LoginAttempt.ok.is_(True)))


def _latest(first: datetime, *times: datetime | None) -> datetime:
    return max([first, *(t for t in times if t is not None)])


def _retry_after(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def _locked(until: datetime, now: datetime, scope: str) -> ConsoleError:
    seconds = _retry_after(until, now)
    what = "this user name" if scope == "user" else "this address"
    return ConsoleError("locked", f"too many failed sign-ins for {what}; try again in {seconds} s", 429,
                        retry_after=seconds)


def attempt_login(session: Session, auth: AuthConfig, username: str, password: str, ip: str,
                  now: datetime | None = None) -> LoginOutcome:
    """Check one sign-in and record it (attempt row and audit row) in ``session``.

    The caller commits ``session`` whatever the outcome, then raises ``outcome.refusal`` if there is one:
    a refused attempt must still be counted."""
    now = now or utcnow()
    name, ip = normalise_name(username), ip[:MAX_NAME]
    user = session.scalar(select(User).where(User.username == name))
    window_start = now - timedelta(seconds=auth.failure_window_s)
    session.execute(delete(LoginAttempt).where((LoginAttempt.username == name) | (LoginAttempt.ip == ip),
                                               LoginAttempt.at < min(now - KEEP_ATTEMPTS, window_start)))

    def refuse(kind: str, key: str, until: datetime, *, starts: bool) -> LoginOutcome:
        session.add(LoginAttempt(username=name, ip=ip, at=now, ok=False))
        row = record(session, name, LOCK_ACTION, object_type=kind, object_id=key, ip=ip,
                     detail={"until": until.isoformat(), "starts_lock": starts, "lockout_s": auth.lockout_s})
        row.actor_role = user.role if user is not None else ""
        return LoginOutcome(None, _locked(until, now, kind))

    # an address or a name still locked out: refused before any password work
    address_end = _lock_end(session, "address", ip)
    # a user's lock is User.locked_until (an admin lifts it by setting it to now); a name nobody has, its audit row
    name_lock = user.locked_until if user is not None else _lock_end(session, "user", name)
    name_end = _latest(now, name_lock)
    if address_end is not None and address_end > now:
        return refuse("address", ip, address_end, starts=False)
    if name_end > now:
        return refuse("user", name, name_end, starts=False)

    # too many failures since the window opened (and since the last success or lock-out): lock now
    until = now + timedelta(seconds=auth.lockout_s)
    name_since = _latest(window_start, name_lock, _last_success(session, name))
    if _failures_since(session, name_since, username=name) >= auth.max_failures:
        if user is not None:
            user.locked_until = until
        return refuse("user", name, until, starts=True)
    address_since = _latest(window_start, address_end)
    if _failures_since(session, address_since, ip=ip) >= auth.max_address_failures:
        return refuse("address", ip, until, starts=True)

    good = verify_password(user.password_hash if user is not None else None, password)
    ok = good and user is not None and user.active
    session.add(LoginAttempt(username=name, ip=ip, at=now, ok=ok))
    if ok and user is not None:
        record(session, principal_for(session, user, "session", ip=ip), "login_ok", object_type="user",
               object_id=name)
        return LoginOutcome(user, None)
    reason = "unknown_user" if user is None else ("inactive" if good else "wrong_password")
    row = record(session, name, "login_failed", object_type="user", object_id=name, ip=ip,
                 detail={"reason": reason})
    row.actor_role = user.role if user is not None else ""
    return LoginOutcome(None, ConsoleError("bad_credentials", "wrong user name or password", 401))
