"""``X-Bench-Served-By``: the database aliases whose connections ran a request's SQL.

The same measure whatever the router (ours has its own header, django-multidb-router none).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from django.db import connections

HEADER = "X-Bench-Served-By"


def _recorder(alias: str, used: set[str]) -> Callable[..., Any]:
    def record(execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any) -> Any:
        used.add(alias)
        return execute(sql, params, many, context)

    return record


class ServedByMiddleware:
    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        used: set[str] = set()
        with ExitStack() as stack:
            for alias in connections:
                stack.enter_context(connections[alias].execute_wrapper(_recorder(alias, used)))
            response = self.get_response(request)
        response[HEADER] = ",".join(sorted(used))
        return response
