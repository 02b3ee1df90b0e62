"""Prometheus metrics of the router, in one place (served by ``dbrouting.views.metrics_view``),
and the log lines of the health cache's changes.

Gauges follow the health cache's snapshot (set when it publishes one, not per scrape), through
the same ``usable`` predicate as the router. Under gunicorn with ``PROMETHEUS_MULTIPROC_DIR``
set, each worker writes its own values and each gauge's ``multiprocess_mode`` says how they
combine (see README, "Metrics").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from .assessment import FOREIGN, LAGGING, OK, PROMOTED, UNKNOWN, ReplicaHealth
from .conf import ALL_BEHIND_POLICIES, Config
from .probe import PrimaryProbe

logger = logging.getLogger("dbrouting")

reads_total = Counter("dbrouting_reads_total", "Reads routed, by the alias chosen and the reason.", ["alias", "reason"])
fallbacks_total = Counter(
    "dbrouting_fallbacks_total", "Reads moved off a failing replica, by replica and cause.", ["alias", "cause"]
)
replica_lag_seconds = Gauge(
    "dbrouting_replica_lag_seconds", "Replica staleness upper bound, seconds.", ["alias"], multiprocess_mode="livemax"
)
replica_lag_bytes = Gauge(
    "dbrouting_replica_lag_bytes", "WAL bytes the replica has not replayed.", ["alias"], multiprocess_mode="livemax"
)
staleness_tolerance_seconds = Gauge(
    "dbrouting_staleness_tolerance_seconds", "The staleness tolerance in force: MAX_STALENESS_SECONDS, or "
    "degraded mode's while the primary is unreachable (+Inf: unbounded).", multiprocess_mode="livemin",
)  # fmt: skip
replica_usable = Gauge(
    "dbrouting_replica_usable", "1 when the replica gets reads under the default tolerance.", ["alias"],
    multiprocess_mode="livemin",
)  # fmt: skip
primary_up = Gauge(
    "dbrouting_primary_up", "1 while the primary answers its probes; 0 in degraded mode (reads on replicas).",
    multiprocess_mode="livemin",
)  # fmt: skip
all_replicas_behind = Gauge(
    "dbrouting_all_replicas_behind", "1 while no replica is within the default tolerance and the primary is up.",
    multiprocess_mode="livemax",
)  # fmt: skip
all_behind_policy = Gauge(
    "dbrouting_all_behind_policy", "1 for the ALL_BEHIND_POLICY in force (the setting, or an operator's).",
    ["policy"], multiprocess_mode="livemax",
)  # fmt: skip
probe_duration_seconds = Histogram(
    "dbrouting_probe_duration_seconds", "Duration of health probes.", ["alias"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)  # fmt: skip
probe_failures_total = Counter("dbrouting_probe_failures_total", "Failed or timed-out health probes.", ["alias"])


def count_reads(reads: Mapping[tuple[str, str], int]) -> None:
    """Add a scope's reads, by (alias, reason), to ``dbrouting_reads_total``. A scope counts its
    reads in a plain dict and adds them here once: an increment of a labelled child takes a lock
    (and, under gunicorn, writes a memory-mapped file), which would cost more than the decision."""
    for (alias, reason), count in reads.items():
        reads_total.labels(alias, reason).inc(count)


def observe_snapshot(snapshot: Any, config: Any) -> None:
    """Lag and usability gauges of a new snapshot (``Snapshot.usable``, as the router asks)."""
    usable = snapshot.usable(config)
    primary_up.set(1 if snapshot.primary_up else 0)
    staleness_tolerance_seconds.set(config.tolerance(snapshot.primary_up))
    all_replicas_behind.set(1 if snapshot.all_behind(config) else 0)
    in_force = snapshot.policy(config)
    for policy in ALL_BEHIND_POLICIES:
        all_behind_policy.labels(policy).set(1 if policy == in_force else 0)
    for alias, health in snapshot.replicas.items():
        # Unknown (the replica is down, or not probed yet) is +Inf, never the last value seen: a
        # dead replica must not look caught up, and its staleness has no bound. Not NaN: under
        # gunicorn, livemax merges the workers' values with ">", which NaN never satisfies.
        replica_lag_seconds.labels(alias).set(math.inf if health.lag_seconds is None else health.lag_seconds)
        replica_lag_bytes.labels(alias).set(math.inf if health.lag_bytes is None else health.lag_bytes)
        replica_usable.labels(alias).set(1 if alias in usable else 0)


def observe_probes(probes: Iterable[Any]) -> None:
    for result in probes:
        probe_duration_seconds.labels(result.alias).observe(result.duration)
        if not result.ok:
            probe_failures_total.labels(result.alias).inc()


def log_primary(previous: PrimaryProbe | None, current: PrimaryProbe, config: Config) -> None:
    """The start and the end of an outage of the primary, once each."""
    if current.ok == (previous is None or previous.ok):
        return
    if current.ok:
        logger.warning("primary %s reachable again: writes work, normal lag rules apply", current.alias)
    elif config.primary_outage_max_staleness_seconds:
        logger.error("primary %s unreachable (%s): degraded mode, reads on replicas up to %g s stale, "
                     "writes fail", current.alias, current.error, config.tolerance(primary_up=False))  # fmt: skip
    else:
        logger.error("primary %s unreachable (%s): writes and reads fail", current.alias, current.error)


def log_all_behind(was: bool, previous: Any, current: Any, config: Config) -> bool:
    """When the site enters and leaves "no replica within the tolerance" (``was``: the last
    verdict logged), and when the policy in force changes. Returns the verdict now."""
    now, policy = current.all_behind(config), current.policy(config)
    if now and not was:
        logger.warning("no replica is within the tolerance (%g s): reads follow the %r policy",
                       config.max_staleness_seconds, policy)  # fmt: skip
    elif was and not now:
        logger.warning("a replica is within the tolerance again: reads back on the replicas")
    if policy != previous.policy(config):
        logger.warning("all-behind policy now %r (%s)", policy,
                       "operator's override" if policy != config.all_behind_policy else "the setting")  # fmt: skip
    return bool(now)


def log_transition(previous: ReplicaHealth, current: ReplicaHealth) -> None:
    if previous.state == current.state:
        return
    if current.state == OK:
        level = logging.DEBUG if previous.state == UNKNOWN else logging.INFO
        logger.log(level, "replica %s is usable%s", current.alias, "" if previous.state == UNKNOWN else " again")
    elif current.state in (PROMOTED, FOREIGN):
        logger.error("replica %s is %s (%s): no reads go to it", current.alias, current.state, current.reason)
    else:
        what = "no reads within the tolerance go to it" if current.state == LAGGING else "no reads go to it"
        logger.warning("replica %s is %s (%s): %s", current.alias, current.state, current.reason, what)
