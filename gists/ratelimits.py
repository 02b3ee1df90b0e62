"""Abuse limits per client address, counted by django-ratelimit in the ``default`` cache.

A write flood makes WAL faster than replicas replay it: every read then goes to the primary.
So each write endpoint (the form and the API), the admin's login, and requests that carry a causal
token (whose reads go to the primary until a replica has replayed the client's write) have a
limit per client address. Over it, the answer is 429 with ``Retry-After``; nothing is written.

Limits are ``"count/period"`` strings in ``settings.RATELIMITS`` (``""``: no limit);
``RATELIMIT_ENABLE = False`` turns them all off (the benchmarks' settings only). The client's
address is ``REMOTE_ADDR``, or, behind ``TRUSTED_PROXY_COUNT`` proxies, the address the
outermost trusted proxy saw (``X-Forwarded-For``, counted from the right: a client can prepend
anything, but not append).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage

logger = logging.getLogger("gists")


def client_ip(request: HttpRequest) -> str:
    """The client's address (django-ratelimit's ``RATELIMIT_IP_META_KEY``)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return str(request.META.get("REMOTE_ADDR", ""))


def over_limit(request: HttpRequest, group: str, key: str = "ip") -> int | None:
    """Counts this request against ``RATELIMITS[group]``: the seconds until the window ends
    when it is over the limit, else None. A cache that fails is logged and lets requests through
    (an outage of the limiter's cache must not stop the site)."""
    rate = settings.RATELIMITS.get(group) or None
    if rate is None:
        return None
    try:
        usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    except Exception:  # the cache's own errors (a Redis that is down): not the client's fault
        logger.exception("rate limit %s not counted: the cache failed", group)
        return None
    if usage is None or not usage["should_limit"] or usage["limit"] == 0:  # limit 0: the count failed
        return None
    return max(1, int(usage["time_left"]))


def too_many(request: HttpRequest, retry_after: int) -> HttpResponse:
    """429 with ``Retry-After``: JSON under /api/, a page elsewhere."""
    message = f"Too many requests from your address; retry in {retry_after} s."
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"errors": {"rate": [message]}}, status=429)
    else:
        response = render(request, "gists/too_many.html", {"message": message}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def limit(group: str, key: str = "ip") -> Callable[[Callable[..., HttpResponse]], Any]:
    """View decorator: POST requests count against ``RATELIMITS[group]``, per ``key`` (a
    django-ratelimit key: the client's address, or ``"post:username"``)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method == "POST":
                retry_after = over_limit(request, group, key)
                if retry_after is not None:
                    return too_many(request, retry_after)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


class CausalReadLimitMiddleware:
    """Requests that carry a causal token count against ``RATELIMITS["causal"]``. The token
    lives until every replica has replayed the client's write, and while it lives the client's
    reads go to the primary: this bounds what one token (one client) can cost the primary. Put
    it before ``dbrouting.middleware.RoutingMiddleware``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from dbrouting.conf import get_config

        if request.COOKIES.get(get_config().causal_cookie_name):
            retry_after = over_limit(request, "causal")
            if retry_after is not None:
                return too_many(request, retry_after)
        return self.get_response(request)
