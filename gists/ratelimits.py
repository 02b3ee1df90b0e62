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

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.forms import UsernameField
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

from dbrouting.context import state_var

logger = logging.getLogger("gists")

UNKNOWN = "unknown"  # one bucket for every request whose address cannot be read: limited, not free
CACHE_ERROR_LOG_INTERVAL_S = 60.0
_cache_error_logged_at = -CACHE_ERROR_LOG_INTERVAL_S
_unknown_logged = False


def _address(text: str) -> str | None:
    """An IP address from a header's hop or REMOTE_ADDR ("1.2.3.4:5678" and "[::1]:80" too):
    IPv4-mapped IPv6 as the IPv4 it is, other IPv6 as its /64; None when there is none."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        # One client holds a /64 (SLAAC hands out the rest freely): counted as one, as django-ratelimit does.
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return str(address)


def client_ip(request: HttpRequest) -> str:
    """The client's address, or ``UNKNOWN`` (said once in the log: a proxy not declared?)."""
    global _unknown_logged
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        address = _address(hops[-proxies]) if len(hops) >= proxies else None
    else:
        address = _address(str(request.META.get("REMOTE_ADDR", "")))
    if address is None and not _unknown_logged:
        _unknown_logged = True
        logger.warning("a client's address is unknown (REMOTE_ADDR %r, X-Forwarded-For %r, TRUSTED_PROXY_COUNT %d): "
                       "such requests share one rate limit", request.META.get("REMOTE_ADDR", ""),
                       request.META.get("HTTP_X_FORWARDED_FOR", ""), proxies)  # fmt: skip
    return address or UNKNOWN


def _ip_key(group: str, request: HttpRequest) -> str:
    return client_ip(request)


def _user_name_key(group: str, request: HttpRequest) -> str:
    """The user name as Django's login form reads it (stripped, NFKC: ``UsernameField``), and
    case-insensitive here: a padded, full-width or differently cased spelling counts against the
    same name. Cut to 300 characters first: the form's field has no length limit of its own."""
    return str(UsernameField().to_python(str(request.POST.get("username", ""))[:300])).casefold()


KEYS: dict[str, Callable[[str, HttpRequest], str]] = {"ip": _ip_key, "user_name": _user_name_key}


def over_limit(request: HttpRequest, group: str, key: str = "ip") -> int | None:
    """Counts this request against ``RATELIMITS[group]``: the seconds until the window ends
    when it is over the limit, else None. A cache that fails lets requests through (an outage
    of the limiter's cache must not stop the site), logged once a minute."""
    global _cache_error_logged_at
    rate = settings.RATELIMITS.get(group) or None
    if rate is None:
        return None
    try:
        usage = get_usage(request, group=group, key=KEYS[key], rate=rate, increment=True)
    except (RedisError, OSError) as exc:  # the cache's, never the client's
        if time.monotonic() - _cache_error_logged_at >= CACHE_ERROR_LOG_INTERVAL_S:
            _cache_error_logged_at = time.monotonic()
            logger.error("rate limits not counted: the cache failed (%s); requests go through", exc)
        return None
    if usage is None or not usage["should_limit"]:
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
    """View decorator: POST requests count against ``RATELIMITS[group]``, per ``key`` (``"ip"``:
    the client's address; ``"user_name"``: the POSTed user name)."""

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
    """Requests whose reads are held to a causal token count against ``RATELIMITS["causal"]``.
    The token lives until every replica has replayed the client's write, and while it lives the
    client's reads go to the primary: this bounds what one token (one client) can cost the
    primary. After ``dbrouting.middleware.RoutingMiddleware``, which reads the token from its
    store (cookie or session), and after WhiteNoise (static files do not count)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    @staticmethod
    def refused(request: HttpRequest) -> HttpResponse | None:
        state = state_var.get()  # the request's routing state, with its causal token's position
        if state is None or state.token_lsn is None:
            return None
        retry_after = over_limit(request, "causal")
        return None if retry_after is None else too_many(request, retry_after)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        return self.refused(request) or self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response  # type: ignore[assignment]
        return await sync_to_async(self.refused)(request) or await get_response(request)
