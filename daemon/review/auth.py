"""Who may use the review API and page: users from ``review.users``, roles, bearer tokens.

Roles, each including the one before: ``viewer`` (list, show, images), ``reviewer`` (comment,
boxes, verify, approve, reject), ``admin`` (purge, re-identification lookups).  A request names
its user by ``Authorization: Bearer <token>`` (API) or by the session cookie a sign-in with the
token gave (web page).  Token files are read again on every request (a sidecar may rotate
them), every configured token is compared in constant time (``hmac.compare_digest``, all of
them, whichever matches), and a session ends when its user's token changes.  Tokens never reach
a log.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from dxai.configs.errors import ConfigError
from dxai.configs.schema.review import ReviewUser, Role

RANK: dict[str, int] = {"viewer": 0, "reviewer": 1, "admin": 2}
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Principal:
    """A signed-in user and their role."""

    name: str
    role: Role

    def may(self, need: Role) -> bool:
        """Whether this user's role includes ``need``."""
        return RANK[self.role] >= RANK[need]


@dataclass
class Session:
    """A web sign-in: its user, CSRF token, expiry and the digest of the token it used."""

    principal: Principal
    csrf: str
    expires: float
    token_digest: str


def _digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


class Authenticator:
    """Checks bearer tokens and web sessions against ``review.users``."""

    def __init__(self, users: Mapping[str, ReviewUser], session_ttl_s: float = 8 * 3600.0) -> None:
        self.users = dict(users)
        self.session_ttl_s = session_ttl_s
        self._sessions: dict[str, Session] = {}

    def _read(self) -> dict[str, bytes]:
        """Every user's current token (blocking; unreadable files count as no token)."""
        tokens: dict[str, bytes] = {}
        for name, user in self.users.items():
            try:
                tokens[name] = Path(user.token_file).read_bytes().strip()
            except OSError:
                tokens[name] = b""
        return tokens

    def check(self) -> None:
        """At start: every token file is readable and holds a long enough token (blocking)."""
        for name, user in self.users.items():
            try:
                token = Path(user.token_file).read_bytes().strip()
            except OSError as exc:
                raise ConfigError(f"review.users.{name}.token_file cannot be read") from exc
            if len(token) < MIN_TOKEN_CHARS:
                raise ConfigError(
                    f"review.users.{name}.token_file: token shorter than {MIN_TOKEN_CHARS}"
                )

    async def _match(self, given: bytes) -> tuple[Principal | None, str]:
        """The user whose token equals ``given`` (all compared), and that token's digest."""
        tokens = await anyio.to_thread.run_sync(self._read)
        found: str | None = None
        for name, token in tokens.items():
            same = hmac.compare_digest(given, token) if token else False
            if same and found is None:
                found = name
        if found is None or not given:
            return None, ""
        return Principal(found, self.users[found].role), _digest(tokens[found])

    async def bearer(self, header: str) -> Principal | None:
        """The user an ``Authorization`` header names, or None."""
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        principal, _ = await self._match(given.strip().encode("utf-8"))
        return principal

    async def login(self, token: str) -> tuple[str, Session] | None:
        """A new session (its id, for the cookie) for the user of ``token``, or None."""
        principal, digest = await self._match(token.strip().encode("utf-8"))
        if principal is None:
            return None
        self._expire()
        sid = secrets.token_urlsafe(32)
        session = Session(
            principal, secrets.token_urlsafe(32), time.time() + self.session_ttl_s, digest
        )
        self._sessions[_digest(sid.encode())] = session
        return sid, session

    async def session(self, sid: str | None) -> Session | None:
        """The live session of cookie value ``sid``: not expired, its user's token unchanged."""
        if not sid:
            return None
        key = _digest(sid.encode())
        session = self._sessions.get(key)
        if session is None:
            return None
        tokens = await anyio.to_thread.run_sync(self._read)
        current = tokens.get(session.principal.name, b"")
        fresh = bool(current) and hmac.compare_digest(_digest(current), session.token_digest)
        if session.expires < time.time() or not fresh:
            self._sessions.pop(key, None)
            return None
        return session

    def logout(self, sid: str | None) -> None:
        """End the session of cookie value ``sid`` (if any)."""
        if sid:
            self._sessions.pop(_digest(sid.encode()), None)

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]
