"""The router's settings: one ``DBROUTING`` dict merged over documented defaults.

Read through :func:`get_config`, which caches and is cleared when ``DBROUTING``, ``DATABASES`` or
``DEBUG`` change (``override_settings`` in tests). The strategy and the token store are built
inside the cached ``Config``, so that one ``cache_clear`` covers everything. Nothing here runs at
import time, and this module imports no other of dbrouting's but ``exceptions``.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .exceptions import SettingError

REPLICA_ENGINE_PREFIX = "dbrouting.backends."
ALL_BEHIND_POLICIES = ("primary", "least_lagged", "budget")
OVERRIDE_TABLE = "dbrouting_policyoverride"  # an operator's policy (models.PolicyOverride), read by the probe

DEFAULTS: dict[str, Any] = {
    # Replica aliases to read from; None means every alias whose ENGINE is one of dbrouting's
    # (dbrouting.backends.*), in DATABASES order. Other databases are left alone.
    "REPLICAS": None,
    # The alias that takes every write, and reads when no replica is usable.
    "PRIMARY": "default",
    # The staleness tolerance in force unless a block or view sets its own (max_staleness()).
    "MAX_STALENESS_SECONDS": 5.0,
    # While the primary cannot be reached, replicas serve reads up to this stale (degraded mode;
    # None: as long as the outage lasts; 0: off, reads go to the primary and fail).
    "PRIMARY_OUTAGE_MAX_STALENESS_SECONDS": 300.0,
    # When no replica is within the tolerance (a bulk write, a replay conflict): "primary" (every
    # read there), "least_lagged" (the least-lagged replicas up to MAX_STALENESS_HARD_SECONDS, the
    # responses marked stale), or "budget" (the primary takes PRIMARY_READ_BUDGET reads a second
    # per process, the rest as "least_lagged"). Operators override it at run time (replica_policy).
    "ALL_BEHIND_POLICY": "primary",
    "MAX_STALENESS_HARD_SECONDS": None,  # None: 60 s, or MAX_STALENESS_SECONDS if that is more
    "PRIMARY_READ_BUDGET": 50.0,
    # A replica further behind the primary than this many bytes of WAL gets no reads (None: off).
    "MAX_LAG_BYTES": 64 * 1024 * 1024,
    # How often the host's prober probes each node, in the background.
    "CHECK_INTERVAL_SECONDS": 0.5,
    # "host": one process per host probes, the others follow its snapshots (dbrouting.plane);
    # "process": every process probes on its own.
    "PROBE_SCOPE": "host",
    # Where the processes of a host meet (a folder of this user's only); None: dbrouting-<uid>
    # under /dev/shm, or under the system's temporary folder.
    "RUNTIME_DIR": None,
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
    # Requests with these methods read from the primary from their start (Django's unsafe methods).
    "PRIMARY_READ_METHODS": ["POST", "PUT", "PATCH", "DELETE"],
    # Where the causal token (read-your-writes across requests) lives: dotted path, or None (off).
    "CAUSAL_TOKEN_STORE": "dbrouting.causal.CookieTokenStore",
    "CAUSAL_COOKIE_NAME": "dbrouting_causal",
    # A token older than this is ignored (by then the replicas have it, or are excluded).
    "CAUSAL_TOKEN_MAX_AGE_SECONDS": 3600,
    # Response headers X-DB-Served-By and X-DB-Route (node and reason of each read); None: when DEBUG.
    "SERVED_BY_HEADER": None,
    # Who may read /metrics (dbrouting.views.metrics_view) when DEBUG is off: these networks (the
    # peer's address: behind a proxy, the proxy's), and clients sending "Authorization: Bearer <token>".
    "METRICS_ALLOWED_NETWORKS": ["127.0.0.1/32", "::1/128"],
    "METRICS_TOKEN": None,
    # How far back each replica's lag is kept in the host's snapshot, for the admin page's chart and
    # replica_status --watch (dbrouting.history: at most 120 steps whatever the length; 0: not kept).
    "LAG_HISTORY_SECONDS": 600.0,
}


@dataclass(frozen=True, eq=False)
class Config:
    replicas: tuple[str, ...]
    primary: str
    max_staleness_seconds: float
    primary_outage_max_staleness_seconds: float  # inf: unbounded; 0: no degraded mode
    all_behind_policy: str
    max_staleness_hard_seconds: float
    primary_read_budget: float
    max_lag_bytes: int | None
    check_interval_seconds: float
    probe_scope: str
    runtime_dir: str | None
    connect_timeout_seconds: float
    probe_timeout_seconds: float
    strategy: Any  # an instance with pick(candidates) -> alias (dbrouting.strategies)
    rejoin_after_checks: int
    pin_after_write: bool
    primary_read_methods: frozenset[str]
    token_store: Any  # an instance with load/save/clear (dbrouting.causal), or None: tokens off
    causal_cookie_name: str
    causal_token_max_age_seconds: int
    served_by_header: bool
    metrics_allowed_networks: tuple[str, ...]
    lag_history_seconds: float
    metrics_token: str | None = field(default=None, repr=False)  # a secret: never in a repr or a message

    @property
    def connect_timeout(self) -> int:
        """libpq's ``connect_timeout``: whole seconds, at least 2 (libpq treats 1 as 2)."""
        return max(2, math.ceil(self.connect_timeout_seconds))

    def tolerance(self, primary_up: bool) -> float:
        """The default staleness tolerance: the configured one, or degraded mode's while the
        primary cannot be reached (if degraded mode is on)."""
        outage = self.primary_outage_max_staleness_seconds
        return self.max_staleness_seconds if primary_up or not outage else max(outage, self.max_staleness_seconds)

    @property
    def stall_limit(self) -> float:
        """A snapshot older than this many seconds means the prober is stuck: trust it no more."""
        return 3 * self.check_interval_seconds + 2 * self.probe_timeout_seconds


def _number(merged: dict[str, Any], name: str, *, minimum: float, allow_none: bool = False) -> Any:
    value = merged[name]
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < minimum:
        raise SettingError(f"DBROUTING['{name}'] must be a number >= {minimum}, not {value!r}")
    return value


def _choice(merged: dict[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = merged[name]
    if value not in choices:
        raise SettingError(f"DBROUTING['{name}'] must be one of {', '.join(map(repr, choices))}, not {value!r}")
    return str(value)


def _hard_ceiling(merged: dict[str, Any]) -> float:
    tolerance = float(_number(merged, "MAX_STALENESS_SECONDS", minimum=0))
    hard = _number(merged, "MAX_STALENESS_HARD_SECONDS", minimum=tolerance, allow_none=True)
    return max(60.0, tolerance) if hard is None else float(hard)


def _unbounded(merged: dict[str, Any], name: str) -> float:
    """A number of seconds, or None for no bound (infinity)."""
    value = _number(merged, name, minimum=0, allow_none=True)
    return math.inf if value is None else float(value)


def _instance(name: str, path: Any) -> Any:
    try:
        return import_string(str(path))()
    except Exception as exc:  # ImportError, or a class that cannot be built without arguments
        raise SettingError(f"DBROUTING['{name}'] {path!r} cannot be imported ({exc}).", "dbrouting.E006") from exc


@functools.cache
def get_config() -> Config:
    """The merged, validated settings (cached)."""
    user = getattr(settings, "DBROUTING", {}) or {}
    if not isinstance(user, dict):
        raise SettingError("DBROUTING must be a dict")
    unknown = set(user) - set(DEFAULTS)
    if unknown:
        raise SettingError(f"DBROUTING has unknown keys: {', '.join(sorted(unknown))}")
    merged = {**DEFAULTS, **user}
    primary = merged["PRIMARY"]
    if not isinstance(primary, str):
        raise SettingError(f"DBROUTING['PRIMARY'] must be a database alias, not {primary!r}")
    return Config(
        replicas=_replicas(merged["REPLICAS"], primary),
        primary=primary,
        max_staleness_seconds=float(_number(merged, "MAX_STALENESS_SECONDS", minimum=0)),
        primary_outage_max_staleness_seconds=_unbounded(merged, "PRIMARY_OUTAGE_MAX_STALENESS_SECONDS"),
        all_behind_policy=_choice(merged, "ALL_BEHIND_POLICY", ALL_BEHIND_POLICIES),
        max_staleness_hard_seconds=_hard_ceiling(merged),
        primary_read_budget=float(_number(merged, "PRIMARY_READ_BUDGET", minimum=0)),
        max_lag_bytes=_number(merged, "MAX_LAG_BYTES", minimum=0, allow_none=True),
        check_interval_seconds=float(_number(merged, "CHECK_INTERVAL_SECONDS", minimum=0.01)),
        probe_scope=_choice(merged, "PROBE_SCOPE", ("host", "process")),
        runtime_dir=None if merged["RUNTIME_DIR"] is None else str(merged["RUNTIME_DIR"]),
        connect_timeout_seconds=float(_number(merged, "CONNECT_TIMEOUT_SECONDS", minimum=1)),
        probe_timeout_seconds=float(_number(merged, "PROBE_TIMEOUT_SECONDS", minimum=0.01)),
        strategy=_instance("STRATEGY", merged["STRATEGY"]),
        rejoin_after_checks=int(_number(merged, "REJOIN_AFTER_CHECKS", minimum=1)),
        pin_after_write=bool(merged["PIN_AFTER_WRITE"]),
        primary_read_methods=frozenset(
            m.upper() for m in _strings("PRIMARY_READ_METHODS", merged["PRIMARY_READ_METHODS"], "HTTP methods")
        ),
        token_store=_instance("CAUSAL_TOKEN_STORE", merged["CAUSAL_TOKEN_STORE"])
        if merged["CAUSAL_TOKEN_STORE"]
        else None,
        causal_cookie_name=str(merged["CAUSAL_COOKIE_NAME"]),
        causal_token_max_age_seconds=int(_number(merged, "CAUSAL_TOKEN_MAX_AGE_SECONDS", minimum=1)),
        served_by_header=settings.DEBUG if merged["SERVED_BY_HEADER"] is None else bool(merged["SERVED_BY_HEADER"]),
        metrics_allowed_networks=_networks(merged["METRICS_ALLOWED_NETWORKS"]),
        metrics_token=_token(merged["METRICS_TOKEN"]),
        lag_history_seconds=float(_number(merged, "LAG_HISTORY_SECONDS", minimum=0)),
    )


def _strings(name: str, value: Any, what: str) -> tuple[str, ...]:
    listed = not isinstance(value, str) and isinstance(value, list | tuple | set | frozenset)
    if not listed or not all(isinstance(item, str) for item in value):
        raise SettingError(f"DBROUTING['{name}'] must be a list of {what}")
    return tuple(value)


def _replicas(value: Any, primary: str) -> tuple[str, ...]:
    if value is None:
        engines = {alias: str(db.get("ENGINE", "")) for alias, db in settings.DATABASES.items()}
        return tuple(a for a, engine in engines.items() if a != primary and engine.startswith(REPLICA_ENGINE_PREFIX))
    return _strings("REPLICAS", value, "database aliases")


def _networks(value: Any) -> tuple[str, ...]:
    networks = _strings("METRICS_ALLOWED_NETWORKS", value, "networks")
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            message = f"DBROUTING['METRICS_ALLOWED_NETWORKS'] has {network!r}, which is not an IP network"
            raise SettingError(message) from None
    return networks


def _token(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and len(value) >= 32):
        return value
    raise SettingError("DBROUTING['METRICS_TOKEN'] must be None or a random string of at least 32 characters")


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in ("DBROUTING", "DATABASES", "DEBUG"):
        get_config.cache_clear()
