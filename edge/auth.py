"""Bearer tokens with roles, scoped to branches. Only token hashes are kept in config."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from edge.config import AuthConfig, hash_token


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: frozenset[str]
    branches: frozenset[str]

    def may(self, role: str, branch_id: str) -> bool:
        in_branch = "*" in self.branches or branch_id in self.branches
        return in_branch and (role in self.roles or "admin" in self.roles)


class Authenticator:
    def __init__(self, config: AuthConfig) -> None:
        self._tokens = [(t.sha256, Principal(t.name, frozenset(t.roles), frozenset(t.branches)))
                        for t in config.tokens]

    def principal(self, token: str | None) -> Principal | None:
        if not token:
            return None
        digest = hash_token(token)
        for expected, principal in self._tokens:
            if hmac.compare_digest(digest, expected):
                return principal
        return None


def new_token() -> str:
    return secrets.token_urlsafe(24)
