"""Fresh routing state around each request (sync and async)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .context import routing_scope


class RoutingMiddleware:
    """Put ``dbrouting.middleware.RoutingMiddleware`` early in MIDDLEWARE: a write made in one
    request pins that request's later reads to the primary, and no other request's."""

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
            return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        get_response: Callable[[Any], Awaitable[Any]] = self.get_response
        with routing_scope():
            return await get_response(request)
