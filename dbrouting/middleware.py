"""Fresh routing state around each request, and the causal token between requests."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.db import DatabaseError

from . import causal
from .conf import get_config
from .context import current_state, routing_scope
from .exceptions import InvalidToken

logger = logging.getLogger("dbrouting")

SERVED_BY_HEADER = "X-DB-Served-By"


class RoutingMiddleware:
    """Put ``dbrouting.middleware.RoutingMiddleware`` early in MIDDLEWARE (after
    SessionMiddleware when the causal token lives in the session).

    - A write in a request pins that request's later reads to the primary, and no other's.
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
        """Read the request's causal token into the routing state; True if it must be dropped."""
        path = get_config().causal_token_store
        if path is None:
            return False
        raw = causal.load_store(path).load(request)
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
        current_state().token_lsn = token.lsn
        return False

    @staticmethod
    def end(request: Any, response: Any, bad_token: bool) -> None:
        config = get_config()
        state = current_state()
        if config.served_by_header and state.reads:
            response[SERVED_BY_HEADER] = ",".join(sorted(state.reads))
        if config.causal_token_store is None:
            return
        store = causal.load_store(config.causal_token_store)
        if state.wrote:
            try:
                token = causal.capture()
            except DatabaseError as exc:
                # After a failed write (the primary is down) the error response says it already.
                log = logger.warning if getattr(response, "status_code", 500) < 500 else logger.debug
                log("could not capture the causal token after a write: %s", exc)
                return
            if state.token_lsn is not None and state.token_lsn > token.lsn:
                token = causal.CausalToken(state.token_lsn, token.minted_ms)
            store.save(request, response, token.encode())
        elif bad_token or (state.token_lsn is not None and causal.passed_by_all_replicas(state.token_lsn)):
            store.clear(request, response)
