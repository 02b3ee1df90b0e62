"""Fresh routing state around each request, and the causal token between requests."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.db import DatabaseError, connections
from django.http import FileResponse

from . import causal
from .conf import get_config
from .context import RoutingState, current_state, routing_scope, state_var
from .exceptions import InvalidToken
from .health import cache
from .metrics import count_reads

logger = logging.getLogger("dbrouting")

SERVED_BY_HEADER = "X-DB-Served-By"  # the nodes that served the request's reads
DEGRADED_HEADER = "X-DB-Degraded"  # a read served by a replica while the primary is unreachable
_END = object()
ROUTE_HEADER = "X-DB-Route"  # each with its reasons: "default (write), replica2 (replica)"
STALE_HEADER = "X-DB-Stale"  # seconds: a replica past the tolerance served it (ALL_BEHIND_POLICY)


def _in_scope(state: RoutingState, chunks: Iterable[Any]) -> Iterator[Any]:
    """A streaming response's content, made (and read from the database) after the view and this
    middleware returned: each chunk in the request's routing state, its reads counted at the end."""
    iterator, counted = iter(chunks), state.tally()
    try:
        while True:
            token = state_var.set(state)
            try:
                chunk = next(iterator, _END)
            finally:
                state_var.reset(token)
            if chunk is _END:
                return
            yield chunk
    finally:
        count_reads({key: n - counted.get(key, 0) for key, n in state.tally().items()})


class RoutingMiddleware:
    """Put ``dbrouting.middleware.RoutingMiddleware`` early in MIDDLEWARE (after
    SessionMiddleware when the causal token lives in the session).

    - A request reads from one replica (monotonic reads); one whose method is unsafe
      (``PRIMARY_READ_METHODS``) reads from the primary.
    - A write in a request pins that request's later reads to the primary, and no other's.
    - The transaction ``ATOMIC_REQUESTS`` opens around a view does not send reads to the
      primary until the request's first write.
    - A request that wrote gets a causal token; later requests carrying it read only from
      replicas that have replayed it.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        with routing_scope():
            bad_token = self.begin(request)
            response = self.get_response(request)
            self.end(request, response, bad_token)
            if getattr(response, "streaming", False) and not isinstance(response, FileResponse):
                response.streaming_content = _in_scope(current_state(), response.streaming_content)
            return response

    async def __acall__(self, request: Any) -> Any:
        get_response: Callable[[Any], Awaitable[Any]] = self.get_response
        with routing_scope():
            bad_token = await sync_to_async(self.begin)(request)
            response = await get_response(request)
            await sync_to_async(self.end)(request, response, bad_token)
            return response

    @staticmethod
    def begin(request: Any) -> bool:
        """Start the request's routing state; True if its causal token must be dropped."""
        config = get_config()
        state = current_state()
        state.primary_reads = request.method in config.primary_read_methods
        if config.token_store is None:
            return False
        raw = config.token_store.load(request)
        if raw is None:
            return False
        try:
            token = causal.CausalToken.decode(raw)
        except InvalidToken as exc:
            if raw:  # "" is a bad signature, already logged by the store
                causal.warn_once("malformed", f"causal token ignored: {exc}")
            return True
        if causal.is_foreign(token):
            causal.warn_once("foreign", "causal token ahead of this cluster's primary: from another cluster")
            return True
        if token.lsn == causal.PIN_LSN and cache.latest.primary_up:  # the primary is back: a real one
            with contextlib.suppress(DatabaseError):
                token, state.renew_token = causal.capture(), True
        state.token_lsn = token.lsn
        return False

    def process_view(self, request: Any, view: Any, args: Any, kwargs: Any) -> None:
        """Django wraps the view in ATOMIC_REQUESTS' atomic block after this hook: note the depth
        that block will take on the primary (Django 5.2's ``BaseHandler.make_view_atomic``)."""
        primary = get_config().primary
        if connections.settings[primary].get("ATOMIC_REQUESTS") and primary not in getattr(
            view, "_non_atomic_requests", ()
        ):
            current_state().request_atomic_depth = len(connections[primary].atomic_blocks) + 1

    @staticmethod
    def end(request: Any, response: Any, bad_token: bool) -> None:
        config = get_config()
        state = current_state()
        routes = {**state.tally(), **({(config.primary, "write"): 1} if state.wrote else {})}
        if not cache.latest.primary_up and any(alias != config.primary for alias, _ in routes):
            response[DEGRADED_HEADER] = "primary unreachable; read from a replica"
        if state.stale_seconds is not None:
            response[STALE_HEADER] = f"{state.stale_seconds:.1f}"
        if config.served_by_header and routes:
            response[SERVED_BY_HEADER] = ",".join(sorted({alias for alias, _ in routes}))
            response[ROUTE_HEADER] = ", ".join(f"{alias} ({reason})" for alias, reason in sorted(routes))
        store = config.token_store
        if store is None:
            return
        if state.wrote and getattr(response, "status_code", 500) < 500:  # (a failed write: no token)
            known = max((p for p in (state.token_lsn, state.write_lsn) if p is not None), default=None)
            try:
                if not cache.latest.primary_up:  # known away: no connect attempt to wait out
                    raise DatabaseError("the primary is unavailable")
                token = causal.capture(at_least=known)
            except DatabaseError as exc:  # gone since the write: its position read then, else a pin
                logger.debug("causal token after a write not captured (%s)", exc)
                unread = state.write_lsn is None  # (the last write ran in a transaction, or the read failed)
                token = causal.pin() if unread else causal.CausalToken(known or 0, int(time.time() * 1000))
            store.save(request, response, token.encode())
        elif state.renew_token and state.token_lsn is not None:
            store.save(request, response, causal.CausalToken(state.token_lsn, int(time.time() * 1000)).encode())
        elif bad_token or (state.token_lsn is not None and causal.passed_by_all_replicas(state.token_lsn)):
            store.clear(request, response)
