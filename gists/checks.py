"""System checks of the project's own settings (``manage.py check``; ``--deploy`` for W001)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core import checks

RATE = re.compile(r"^[1-9][0-9]*/([1-9][0-9]*)?[smhd]$")


@checks.register(checks.Tags.security)
def check_ratelimits(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = [
        checks.Error(
            f"RATELIMITS[{group!r}] is {rate!r}, not a rate",
            hint='"count/period", a count of 1 or more and a period of s, m, h or d (e.g. "20/m", "100/5m"), '
            'or "" for no limit',
            id="gists.E001",
        )
        for group, rate in settings.RATELIMITS.items()
        if rate and not RATE.match(rate)
    ]
    proxies = settings.TRUSTED_PROXY_COUNT
    if isinstance(proxies, bool) or not isinstance(proxies, int) or proxies < 0:
        errors.append(
            checks.Error(
                f"TRUSTED_PROXY_COUNT is {proxies!r}, not a number of proxies",
                hint="0 (clients connect directly), or how many proxies append to X-Forwarded-For",
                id="gists.E002",
            )
        )
    return errors


@checks.register(checks.Tags.caches, deploy=True)
def check_shared_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    backend = settings.CACHES["default"]["BACKEND"]
    if not settings.RATELIMIT_ENABLE or not backend.endswith(".LocMemCache"):
        return []
    return [
        checks.Warning(
            "rate limits are counted per process: each gunicorn worker of each host allows the whole limit",
            hint="set CACHE_URL to a cache every process shares (redis://host:6379/0)",
            id="gists.W001",
        )
    ]
