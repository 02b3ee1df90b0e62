"""``CACHES["default"]`` from ``CACHE_URL`` (django-environ's parsing), with short timeouts on
Redis: the cache counts rate limits on every write, and a Redis that hangs must not hang them."""

from __future__ import annotations

from typing import Any

import environ

REDIS_TIMEOUT_S = 0.25


def cache_from_url(url: str) -> dict[str, Any]:
    config: dict[str, Any] = environ.Env.cache_url_config(url)
    if config["BACKEND"].endswith(".RedisCache"):
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        config.setdefault("OPTIONS", {}).update(
            # One attempt, no back-off sleeps (redis-py retries three times by default).
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
    return config
