"""Read-your-writes across requests by WAL position, not by timer.

When a request writes on the primary, the end of the primary's WAL after the request is its
*causal token*. The token rides to the client's next requests (a signed cookie, or the
session), and their reads go only to replicas whose replay position, as the health cache knows
it, has reached it; to the primary while none has. A token every replica has passed is dropped.
No request probes a replica for this: the health cache's replay positions are at most one check
interval old, so a replica that keeps up serves the client again within one interval.

Outside requests: ``dbrouting.causal_token()`` after a write, and ``dbrouting.read_after(token)``
around the reads of a task enqueued with it.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.core import signing
from django.db import connections

from . import lsn
from .conf import get_config
from .context import read_after_lsn, use_primary
from .exceptions import InvalidToken
from .health import cache

logger = logging.getLogger("dbrouting")

SALT = "dbrouting.causal-token"
SESSION_KEY = "_dbrouting_causal"
_TOKEN = re.compile(r"^([0-9A-F]{1,8}/[0-9A-F]{1,8})@([0-9]{1,16})$")
# Clocks of app servers and probes may differ this much without a token looking foreign.
CLOCK_SLACK_S = 5.0
_warned: set[str] = set()


@dataclass(frozen=True)
class CausalToken:
    lsn: int
    minted_ms: int  # wall clock when captured: tells a token from another cluster

    def encode(self) -> str:
        return f"{lsn.format(self.lsn)}@{self.minted_ms}"

    @classmethod
    def decode(cls, text: str) -> CausalToken:
        match = _TOKEN.match(text or "")
        if not match:
            raise InvalidToken("malformed causal token")
        position, minted = match.groups()
        token = cls(lsn.parse(position) or 0, int(minted))
        if token.minted_ms > (time.time() + 300) * 1000:
            raise InvalidToken("causal token from the future")
        return token


CAPTURE_SQL = """
SELECT CASE WHEN pos % seg = 40 THEN pos - 40 WHEN pos % blk = 24 THEN pos - 24 ELSE pos END
FROM (SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn AS pos,
             current_setting('wal_block_size')::numeric AS blk,
             pg_size_bytes(current_setting('wal_segment_size')) AS seg) AS here
"""


def capture(at_least: int | None = None) -> CausalToken:
    """The end of the WAL inserted so far on the primary: at or past the end of every commit
    made so far, whatever ``synchronous_commit`` says; ``at_least`` (the position of a token the
    scope came with) where that is further. ``pg_current_wal_insert_lsn()`` points past the page
    header when the last record ended on a page boundary, where no replica's replay position
    ever stops: the header is taken off (24 bytes, 40 at a segment's start)."""
    with connections[get_config().primary].cursor() as cursor:
        cursor.execute(CAPTURE_SQL)
        (position,) = cursor.fetchone()
    return CausalToken(max(int(position), at_least or 0), int(time.time() * 1000))


def causal_token() -> str:
    """A token for reads that must see every write committed so far (pass it to a task)."""
    return capture().encode()


def read_after(token: str | None) -> read_after_lsn:
    """Context manager and decorator: reads in the block see the writes ``token`` covers
    (``None``: no constraint; a malformed token raises ``InvalidToken``, a ``ValueError``)."""
    return read_after_lsn(None if token is None else CausalToken.decode(token).lsn)


# The token of a write whose position could not be read (the primary went away right after it):
# every read goes to the primary until a position can be read again.
PIN_LSN = 0xFFFFFFFF_FFFFFFFF


def pin() -> CausalToken:
    return CausalToken(PIN_LSN, int(time.time() * 1000))


def is_foreign(token: CausalToken) -> bool:
    """Ahead of a primary position probed after the token was minted: not from this cluster."""
    primary = cache.latest.primary
    if token.lsn == PIN_LSN or primary is None or not primary.ok or primary.lsn is None or primary.lsn >= token.lsn:
        return False
    probed_wall = time.time() - (time.monotonic() - primary.started)
    return probed_wall * 1000 > token.minted_ms + CLOCK_SLACK_S * 1000


def passed_by_all_replicas(position: int) -> bool:
    replicas = cache.snapshot().replicas
    return all(
        (health := replicas.get(alias)) is not None and lsn.has_replayed(health.replay_lsn, position)
        for alias in get_config().replicas
    )


def warn_once(kind: str, message: str) -> None:
    """Bad tokens come from clients: log the first of each kind, not a line per request."""
    if kind not in _warned:
        _warned.add(kind)
        logger.warning("%s (ignored; further ones are logged at debug level)", message)
    else:
        logger.debug(message)


class TokenStore(Protocol):
    def load(self, request: Any) -> str | None: ...
    def save(self, request: Any, response: Any, token: str) -> None: ...
    def clear(self, request: Any, response: Any) -> None: ...


class CookieTokenStore:
    """A signed, HttpOnly cookie (the default): no server-side state, works across processes."""

    def load(self, request: Any) -> str | None:
        config = get_config()
        if not request.COOKIES.get(config.causal_cookie_name):  # absent, or emptied by a deletion
            return None
        try:
            value: str = request.get_signed_cookie(
                config.causal_cookie_name, salt=SALT, max_age=config.causal_token_max_age_seconds
            )
        except signing.SignatureExpired:
            return None
        except signing.BadSignature:
            warn_once("signature", "causal token cookie with a bad signature (tampered, or another site's)")
            return ""
        return value

    def save(self, request: Any, response: Any, token: str) -> None:
        config = get_config()
        response.set_signed_cookie(
            config.causal_cookie_name, token, salt=SALT, max_age=config.causal_token_max_age_seconds,
            httponly=True, samesite="Lax", secure=settings.SESSION_COOKIE_SECURE,
        )  # fmt: skip

    def clear(self, request: Any, response: Any) -> None:
        response.delete_cookie(get_config().causal_cookie_name, samesite="Lax")


class SessionTokenStore:
    """In the session. Put RoutingMiddleware after SessionMiddleware. With database sessions the
    session is read from the primary (a replica might not have it yet)."""

    def load(self, request: Any) -> str | None:
        session = getattr(request, "session", None)
        if session is None:
            return None
        with use_primary():
            value = session.get(SESSION_KEY)
        return value if isinstance(value, str) else None

    def save(self, request: Any, response: Any, token: str) -> None:
        if getattr(request, "session", None) is not None:
            request.session[SESSION_KEY] = token

    def clear(self, request: Any, response: Any) -> None:
        if getattr(request, "session", None) is not None:
            request.session.pop(SESSION_KEY, None)
