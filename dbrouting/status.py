"""The status report of ``replica_status`` and the admin page: the health cache's own snapshot.

Nothing here probes or judges a node: the report is the cache's latest (or freshly completed)
probe round, with the same ``Snapshot.usable`` the router asks, hysteresis included, so the
command, the page, the gauge and the router cannot disagree. The primary's
``pg_stat_replication`` is read beside it, for the primary's side of the story.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from . import lsn, probe
from .assessment import DOWN, LAGGING, OK, UNKNOWN, ReplicaHealth, Snapshot
from .checks import serious
from .conf import Config, get_config
from .health import cache
from .history import Lags

SCHEMA_VERSION = 3
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


@dataclass
class StatusReport:
    checked_at: str
    max_staleness_seconds: float | None
    all_behind_policy: str | None = None  # in force: the setting, or an operator's override
    all_behind: bool | None = None  # no replica within the tolerance while the primary answers
    all_behind_override: bool = False  # the policy is an operator's (manage.py replica_policy)
    nodes: list[NodeStatus] = field(default_factory=list)
    replication: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exit_code: int = EXIT_OK
    history: Lags = field(default_factory=dict, repr=False)  # the snapshot's, drawn by ``charts``; not in JSON

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["history"]
        return {"schema": SCHEMA_VERSION, **data}


def address(alias: str) -> str:
    """host:port of an alias, from its settings: never the password."""
    settings_dict = connections[alias].settings_dict
    return f"{settings_dict.get('HOST') or 'localhost'}:{settings_dict.get('PORT') or 5432}"


def measure(fresh: bool = True, replication: bool = True, reuse: bool = False) -> StatusReport:
    """The report; ``fresh`` waits for a probe round begun now, ``replication`` reads the primary's
    ``pg_stat_replication``: on a connection of its own, or with ``reuse`` on Django's (a page
    that reloads every few seconds opens none)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        config = get_config()
    except ImproperlyConfigured as exc:
        return StatusReport(now, None, errors=[f"configuration: {exc}"], exit_code=EXIT_BROKEN)
    problems = [f"configuration: {line} (see manage.py check)" for line in serious()]
    if problems:
        return StatusReport(now, config.max_staleness_seconds, errors=problems, exit_code=EXIT_BROKEN)
    try:
        snapshot = fresh_snapshot(config) if fresh else cache.snapshot()
    except TimeoutError as exc:
        return StatusReport(now, config.max_staleness_seconds, errors=[f"health cache: {exc}"], exit_code=EXIT_BROKEN)
    report = StatusReport(now, config.max_staleness_seconds, snapshot.policy(config), snapshot.all_behind(config),
                          snapshot.override() is not None, history=snapshot.history)  # fmt: skip
    if report.all_behind:
        report.errors.append(_all_behind_line(snapshot, config))
    if snapshot.last_good is not None and snapshot.last_good.policy_error is not None:
        report.errors.append(f"all-behind policy override unreadable ({snapshot.last_good.policy_error}): "
                             "the last one read holds")  # fmt: skip
    primary = snapshot.primary
    primary_ok = primary is not None and primary.ok
    why = "not probed yet" if primary is None else primary.error
    report.nodes.append(
        NodeStatus(config.primary, address(config.primary), "primary" if primary_ok else "unknown",
                   reachable=primary_ok, state=OK if primary_ok else "down", why=why)
    )  # fmt: skip
    if not primary_ok:
        report.errors.append(f"{config.primary} (primary) at {address(config.primary)}: {why}")
        report.exit_code = EXIT_BROKEN
    elif replication:
        report.replication = _replication(config, report, reuse)
    usable = snapshot.usable(config)
    for alias in config.replicas:
        health = snapshot.replicas.get(alias, ReplicaHealth(alias))
        node = _replica_status(health, alias in usable)
        report.nodes.append(node)
        if node.state != OK:
            report.errors.append(f"{alias} at {node.address}: {node.state} ({node.why})")
            report.exit_code = max(report.exit_code, EXIT_DEGRADED)
    return report


def _all_behind_line(snapshot: Snapshot, config: Config) -> str:
    """What reads do now that every replica up is past the tolerance."""
    policy, hard, now = snapshot.policy(config), config.max_staleness_hard_seconds, time.monotonic()
    start = f"every replica is past the tolerance ({config.max_staleness_seconds:g} s): "
    if policy == "primary":
        return start + "reads on the primary (the 'primary' policy)"
    serving = [a for a, h in snapshot.replicas.items() if h.within_ceiling(config, now)]  # as the router asks
    if not serving:
        return start + f"and past the hard ceiling ({hard:g} s): reads on the primary"
    return start + f"stale reads from {', '.join(serving)}, up to {hard:g} s (the {policy!r} policy)"


def _replication(config: Config, report: StatusReport, reuse: bool) -> list[dict[str, Any]]:
    try:
        return probe.replication(config, connections[config.primary] if reuse else None)
    except Exception as exc:  # reported, never raised: the rest of the report stands
        report.errors.append(f"{config.primary}: pg_stat_replication unreadable: {probe.describe(exc)}")
        return []


def _replica_status(health: ReplicaHealth, usable: bool) -> NodeStatus:
    reachable = health.state not in (DOWN, UNKNOWN)
    role = "unknown" if not reachable else ("replica" if health.in_recovery else "promoted")
    state, why = health.state, health.reason
    if state == OK and not usable:  # fit at its probe; the snapshot's age says otherwise now
        state, why = LAGGING, "presumed further behind since its last probe"
    return NodeStatus(
        health.alias, address(health.alias), role, reachable=reachable, receiving=health.receiving,
        replay_lsn=lsn.format(health.replay_lsn), lag_bytes=health.lag_bytes,
        lag_seconds=None if health.lag_seconds is None else round(health.lag_seconds, 3),
        usable=usable, state=state, why=why,
    )  # fmt: skip


COLUMNS = ("alias", "address", "role", "reachable", "receiving", "replay_lsn", "lag_bytes", "lag_s", "usable", "why")


def table_rows(report: StatusReport) -> list[tuple[str, ...]]:
    """The report's nodes as table cells ("-" for unknown, yes/no): the command's and the page's."""

    def show(value: Any) -> str:
        return "-" if value is None else ("yes" if value else "no") if isinstance(value, bool) else str(value)

    return [
        tuple(map(show, (n.alias, n.address, n.role, n.reachable, n.receiving, n.replay_lsn, n.lag_bytes,
                         n.lag_seconds, n.usable, (n.why or "") if n.state != OK else "")))
        for n in report.nodes
    ]  # fmt: skip


def fresh_snapshot(config: Config) -> Snapshot:
    """The snapshot of a round begun after this call (``replica_status``): the prober's own
    round, through the same assessment and hysteresis. A process with no history yet waits
    until the lag window holds only probes made with history (``REJOIN_AFTER_CHECKS`` + 1
    rounds): a first probe on an idle primary can only bound lag by the last commit's age.
    Raises ``TimeoutError`` when the rounds do not complete within their timeouts."""
    rounds = 2 if cache.rounds else config.rejoin_after_checks + 1
    limit = rounds * (config.check_interval_seconds + 2 * config.probe_timeout_seconds) + config.connect_timeout + 1
    if not cache.wait_for_rounds(rounds, timeout=limit):
        cause = f": {cache.last_error}" if cache.last_error else ""
        raise TimeoutError(f"no probe round completed within {limit:.0f} s{cause}")
    return cache.snapshot()
