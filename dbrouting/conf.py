"""The router's settings: one ``DBROUTING`` dict merged over documented defaults.

Read through :func:`get_config`, which caches and is cleared when ``DBROUTING`` or
``DATABASES`` change (``override_settings`` in tests). Nothing here runs at import time.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

REPLICA_ENGINE_PREFIX = "dbrouting.backends."

DEFAULTS: dict[str, Any] = {
    # Replica aliases to read from; None means every alias whose ENGINE is one of dbrouting's
    # (dbrouting.backends.*), in DATABASES order. Other databases are left alone.
    "REPLICAS": None,
    # The alias that takes every write, and reads when no replica is usable.
    "PRIMARY": "default",
    # The staleness tolerance in force unless a block or view sets its own (max_staleness()).
    "MAX_STALENESS_SECONDS": 5.0,
    # A replica further behind the primary than this many bytes of WAL gets no reads (None: off).
    "MAX_LAG_BYTES": 64 * 1024 * 1024,
    # How often each process probes each replica, in the background.
    "CHECK_INTERVAL_SECONDS": 0.5,
    # Connect timeout of probes and of the replicas' own connections (libpq's minimum is 2).
    "CONNECT_TIMEOUT_SECONDS": 2.0,
    # A probe that has not answered after this long marks the replica down.
    "PROBE_TIMEOUT_SECONDS": 1.0,
    # How a usable replica is picked: dotted path to a class with pick(candidates) -> alias.
    "STRATEGY": "dbrouting.strategies.RoundRobin",
    # A replica that left rejoins after this many consecutive good probes.
    "REJOIN_AFTER_CHECKS": 2,
    # After a write, the rest of the request (or routing_scope) reads from the primary.
    "PIN_AFTER_WRITE": True,
    # Where the causal token (read-your-writes across requests) lives: dotted path, or None (off).
    "CAUSAL_TOKEN_STORE": "dbrouting.causal.CookieTokenStore",
    "CAUSAL_COOKIE_NAME": "dbrouting_causal",
    # A token older than this is ignored (by then the replicas have it, or are excluded).
    "CAUSAL_TOKEN_MAX_AGE_SECONDS": 3600,
    # Response header naming the nodes that served the request's reads; None: only when DEBUG.
    "SERVED_BY_HEADER": None,
    # Who may read /metrics (dbrouting.metrics.metrics_view) when DEBUG is off.
    "METRICS_ALLOWED_NETWORKS": ["127.0.0.1/32", "::1/128"],
}


@dataclass(frozen=True)
class Config:
    replicas: tuple[str, ...]
    primary: str
    max_staleness_seconds: float
    max_lag_bytes: int | None
    check_interval_seconds: float
    connect_timeout_seconds: float
    probe_timeout_seconds: float
    strategy: str
    rejoin_after_checks: int
    pin_after_write: bool
    causal_token_store: str | None
    causal_cookie_name: str
    causal_token_max_age_seconds: int
    served_by_header: bool
    metrics_allowed_networks: tuple[str, ...]


def _number(name: str, value: Any, *, minimum: float, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < minimum:
        raise ImproperlyConfigured(f"DBROUTING['{name}'] must be a number >= {minimum}, not {value!r}")
    return value


@functools.cache
def get_config() -> Config:
    """The merged, validated settings (cached)."""
    user = getattr(settings, "DBROUTING", {}) or {}
    if not isinstance(user, dict):
        raise ImproperlyConfigured("DBROUTING must be a dict")
    unknown = set(user) - set(DEFAULTS)
    if unknown:
        raise ImproperlyConfigured(f"DBROUTING has unknown keys: {', '.join(sorted(unknown))}")
    merged = {**DEFAULTS, **user}
    primary = merged["PRIMARY"]
    if not isinstance(primary, str):
        raise ImproperlyConfigured(f"DBROUTING['PRIMARY'] must be a database alias, not {primary!r}")
    replicas = merged["REPLICAS"]
    if replicas is None:
        replicas = [
            alias
            for alias, db in settings.DATABASES.items()
            if alias != primary and str(db.get("ENGINE", "")).startswith(REPLICA_ENGINE_PREFIX)
        ]
    if not isinstance(replicas, list | tuple) or not all(isinstance(a, str) for a in replicas):
        raise ImproperlyConfigured("DBROUTING['REPLICAS'] must be a list of database aliases")
    return Config(
        replicas=tuple(replicas),
        primary=primary,
        max_staleness_seconds=float(_number("MAX_STALENESS_SECONDS", merged["MAX_STALENESS_SECONDS"], minimum=0)),
        max_lag_bytes=_number("MAX_LAG_BYTES", merged["MAX_LAG_BYTES"], minimum=0, allow_none=True),
        check_interval_seconds=float(_number("CHECK_INTERVAL_SECONDS", merged["CHECK_INTERVAL_SECONDS"], minimum=0.01)),
        connect_timeout_seconds=float(_number("CONNECT_TIMEOUT_SECONDS", merged["CONNECT_TIMEOUT_SECONDS"], minimum=1)),
        probe_timeout_seconds=float(_number("PROBE_TIMEOUT_SECONDS", merged["PROBE_TIMEOUT_SECONDS"], minimum=0.01)),
        strategy=str(merged["STRATEGY"]),
        rejoin_after_checks=int(_number("REJOIN_AFTER_CHECKS", merged["REJOIN_AFTER_CHECKS"], minimum=1)),
        pin_after_write=bool(merged["PIN_AFTER_WRITE"]),
        causal_token_store=merged["CAUSAL_TOKEN_STORE"] or None,
        causal_cookie_name=str(merged["CAUSAL_COOKIE_NAME"]),
        causal_token_max_age_seconds=int(
            _number("CAUSAL_TOKEN_MAX_AGE_SECONDS", merged["CAUSAL_TOKEN_MAX_AGE_SECONDS"], minimum=1)
        ),
        served_by_header=settings.DEBUG if merged["SERVED_BY_HEADER"] is None else bool(merged["SERVED_BY_HEADER"]),
        metrics_allowed_networks=_networks(merged["METRICS_ALLOWED_NETWORKS"]),
    )


def _networks(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ImproperlyConfigured("DBROUTING['METRICS_ALLOWED_NETWORKS'] must be a list of networks")
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"DBROUTING['METRICS_ALLOWED_NETWORKS'] has {network!r}, which is not an IP network"
            ) from None
    return tuple(value)


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in ("DBROUTING", "DATABASES"):
        get_config.cache_clear()
        from .causal import load_store
        from .strategies import load_strategy

        load_strategy.cache_clear()
        load_store.cache_clear()
    elif setting == "DEBUG":
        get_config.cache_clear()
