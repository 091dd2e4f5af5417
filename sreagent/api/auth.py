"""Bearer-token authentication with scopes.

Tokens live in the config as SHA-256 hashes. A presented token is hashed and compared with
every configured hash using :func:`hmac.compare_digest` (all of them, so the time taken does
not reveal which one matched). ``admin`` implies every other scope.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sreagent.controller.errors import Forbidden, Unauthenticated
from sreagent.controller.settings import SCOPES, Settings


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise Forbidden(f"token {self.name!r} lacks the {scope!r} scope this endpoint needs")


INSECURE = Principal("insecure-dev", frozenset(SCOPES))


def authenticate(settings: Settings, authorization: str | None) -> Principal:
    if settings.insecure_dev:
        return INSECURE
    if not authorization:
        raise Unauthenticated("missing bearer token (send Authorization: Bearer <token>)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    presented = hashlib.sha256(token.strip().encode()).hexdigest()
    found: Principal | None = None
    for entry in settings.auth.tokens:
        if hmac.compare_digest(presented, entry.sha256) and found is None:
            found = Principal(entry.name, frozenset(entry.scopes))
    if found is None:
        raise Unauthenticated("unknown bearer token")
    return found
