"""System checks of the project's own settings (``manage.py check``; ``--deploy`` for W001)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core import checks

RATE = re.compile(r"^[0-9]+/[0-9]*[smhd]$")


@checks.register(checks.Tags.security)
def check_ratelimits(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"RATELIMITS[{group!r}] is {rate!r}, not a rate",
            hint='"count/period" with a period of s, m, h or d (e.g. "20/m", "100/5m"), or "" for no limit',
            id="gists.E001",
        )
        for group, rate in settings.RATELIMITS.items()
        if rate and not RATE.match(rate)
    ]


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
