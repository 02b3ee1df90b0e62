"""A measurement of every node now (not the cached state), for ``replica_status`` and the admin.

Nodes are probed in parallel, each with the probe timeout; the health cache's view is reported
beside the measurement where they differ.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from . import probe
from .assessment import OK, ReplicaHealth, Track, assess
from .conf import get_config
from .health import cache

SCHEMA_VERSION = 1
EXIT_OK, EXIT_DEGRADED, EXIT_BROKEN = 0, 1, 2


@dataclass
class NodeStatus:
    alias: str
    address: str
    role: str  # "primary", "replica", "promoted", or "unknown" when unreachable
    reachable: bool
    receiving: bool | None = None
    replay_lsn: str | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    usable: bool | None = None
    state: str | None = None
    why: str | None = None
    cache_state: str | None = None  # the health cache's state for this replica, when it differs


@dataclass
class StatusReport:
    checked_at: str
    max_staleness_seconds: float | None
    nodes: list[NodeStatus] = field(default_factory=list)
    replication: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exit_code: int = EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, **asdict(self)}


def address(alias: str) -> str:
    """host:port of an alias, from its settings: never the password."""
    settings_dict = connections[alias].settings_dict
    return f"{settings_dict.get('HOST') or 'localhost'}:{settings_dict.get('PORT') or 5432}"


def measure(wait_for_cache: bool = True) -> StatusReport:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        config = get_config()
    except ImproperlyConfigured as exc:
        return StatusReport(now, None, errors=[f"configuration: {exc}"], exit_code=EXIT_BROKEN)
    missing = [a for a in (config.primary, *config.replicas) if a not in connections.settings]
    if missing:
        message = f"configuration: unknown database alias {', '.join(missing)} (see manage.py check)"
        return StatusReport(now, config.max_staleness_seconds, errors=[message], exit_code=EXIT_BROKEN)
    timeout, connect = config.probe_timeout_seconds, config.connect_timeout_seconds
    if wait_for_cache:
        cache.wait_for_rounds(1, timeout=connect + 2 * timeout + 1)
    cached = cache.snapshot()
    with ThreadPoolExecutor(max_workers=len(config.replicas) + 2) as pool:
        primary_future = pool.submit(probe.probe_primary, config.primary, connect, timeout)
        replication_future = pool.submit(probe.replication, config.primary, connect, timeout)
        futures = {a: pool.submit(probe.probe_replica, a, connect, timeout) for a in config.replicas}
        pending: list[Future[Any]] = [primary_future, replication_future, *futures.values()]
        wait_futures(pending, timeout=connect + timeout)
        started = time.monotonic()
        primary = (
            primary_future.result()
            if primary_future.done()
            else probe.PrimaryProbe(config.primary, ok=False, duration=timeout, started=started, error="timed out")
        )
        report = StatusReport(now, config.max_staleness_seconds)
        report.nodes.append(
            NodeStatus(config.primary, address(config.primary), "primary" if primary.ok else "unknown",
                       reachable=primary.ok, state=OK if primary.ok else "down", why=primary.error)
        )  # fmt: skip
        if not primary.ok:
            report.errors.append(f"{config.primary} (primary) at {address(config.primary)}: {primary.error}")
            report.exit_code = EXIT_BROKEN
        if replication_future.done() and replication_future.exception() is None:
            report.replication = replication_future.result()
        for alias, future in futures.items():
            result = (
                future.result()
                if future.done()
                else probe.ReplicaProbe(alias, ok=False, duration=timeout, error="probe timed out")
            )
            health = assess(ReplicaHealth(alias), Track(), result, primary, config)
            report.nodes.append(_replica_status(alias, result, health, cached.get(alias), config))
    for node in report.nodes[1:]:
        if node.state != OK:
            report.errors.append(f"{node.alias} at {node.address}: {node.state} ({node.why})")
            report.exit_code = max(report.exit_code, EXIT_DEGRADED)
    return report


def _replica_status(
    alias: str, result: probe.ReplicaProbe, health: ReplicaHealth, cached: ReplicaHealth | None, config: Any
) -> NodeStatus:
    role = "unknown" if not result.ok else ("replica" if result.in_recovery else "promoted")
    usable = health.usable(config.max_staleness_seconds, config.max_lag_bytes)
    cache_state = cached.state if cached is not None and cached.state != health.state else None
    return NodeStatus(
        alias, address(alias), role, reachable=result.ok, receiving=health.receiving,
        replay_lsn=probe.format_lsn(result.replay_lsn), lag_bytes=health.lag_bytes,
        lag_seconds=None if health.lag_seconds is None else round(health.lag_seconds, 3),
        usable=usable, state=health.state, why=health.reason, cache_state=cache_state,
    )  # fmt: skip


COLUMNS = ("alias", "address", "role", "reachable", "receiving", "replay_lsn", "lag_bytes", "lag_s", "usable",
           "why", "cache")  # fmt: skip


def table_rows(report: StatusReport) -> list[tuple[str, ...]]:
    def show(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    rows = []
    for n in report.nodes:
        why = n.why if n.state != OK else ""
        values = (n.alias, n.address, n.role, n.reachable, n.receiving, n.replay_lsn,
                  n.lag_bytes, n.lag_seconds, n.usable, why or "", n.cache_state or "")  # fmt: skip
        rows.append(tuple(show(v) for v in values))
    return rows
