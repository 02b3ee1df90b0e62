"""A database that cannot be reached is a 503 with Retry-After, never a traceback or a hang.

Reads fail over between replicas and the primary inside dbrouting; what reaches here is a
connection failure with nowhere else to go: a write (or a read that must see the primary) while
the primary restarts. The client is told to come back shortly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("gists")

RETRY_AFTER_SECONDS = 5


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        first_line = (str(exception).strip().splitlines() or [type(exception).__name__])[0]
        # %r: a path is the client's text; escaped, it cannot forge log lines (cf. CVE-2025-48432).
        logger.warning("database unavailable for %r %r: %s", request.method, request.path, first_line)
        response: HttpResponse
        if request.path.startswith("/api/"):
            body = {"errors": {"database": ["Read-only for the moment: the database is unavailable; retry shortly."]}}
            response = JsonResponse(body, status=503)
        else:
            text = (
                "<h1>Read-only for the moment</h1>"
                "<p>The database is unavailable. Please try again in a few seconds.</p>"
            )
            response = HttpResponse(text, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
