"""Prometheus metrics of the router, in one place.

Gauges are set by the health cache after each probe round, not computed per scrape. Under
gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` set, each worker writes its own values and the
``multiprocess_mode`` of each gauge says how they combine (see README, "Metrics").
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from prometheus_client import Counter, Gauge, Histogram

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
replica_usable = Gauge(
    "dbrouting_replica_usable", "1 when the replica gets reads under the default tolerance.", ["alias"],
    multiprocess_mode="livemin",
)  # fmt: skip
probe_duration_seconds = Histogram(
    "dbrouting_probe_duration_seconds", "Duration of health probes.", ["alias"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)  # fmt: skip
probe_failures_total = Counter("dbrouting_probe_failures_total", "Failed or timed-out health probes.", ["alias"])

# Reads are counted on the hot path in plain per-process counters (``next()`` on an
# ``itertools.count`` is atomic and about 10 times cheaper than a Prometheus increment, which
# takes a lock, and in multi-process mode writes a memory-mapped file). The prober thread folds
# them into ``dbrouting_reads_total`` after each round, and ``/metrics`` before answering: the
# counter is at most one check interval behind.
_pending: dict[tuple[str, str], itertools.count[int]] = {}
_folded: dict[tuple[str, str], int] = {}
_fold_lock = threading.Lock()


def read_tick(alias: str, reason: str) -> Callable[[], int]:
    """What counts one read of ``alias`` for ``reason`` when called."""
    counter = _pending.get((alias, reason))
    if counter is None:
        counter = _pending.setdefault((alias, reason), itertools.count(1))
    return counter.__next__


def count_read(alias: str, reason: str) -> None:
    read_tick(alias, reason)()


def _value(counter: itertools.count[int]) -> int:
    """How many times ``counter`` (started at 1) was advanced, read without advancing it."""
    return int(repr(counter)[len("count(") : -1]) - 1


def flush_reads() -> None:
    """Fold the reads counted since the last call into ``dbrouting_reads_total``."""
    with _fold_lock:
        for key, counter in list(_pending.items()):
            total = _value(counter)
            delta = total - _folded.get(key, 0)
            if delta > 0:
                reads_total.labels(*key).inc(delta)
                _folded[key] = total


def _forget_after_fork() -> None:
    # The child starts with the parent's counts already folded by the parent: keep them as folded.
    global _fold_lock
    _fold_lock = threading.Lock()
    for key, counter in _pending.items():
        _folded[key] = _value(counter)


os.register_at_fork(after_in_child=_forget_after_fork)


def observe_round(healths: Mapping[str, Any], probes: Mapping[str, Any], max_staleness: float, max_bytes: Any) -> None:
    """Called by the health cache after each probe round."""
    for alias, health in healths.items():
        # Unknown (the replica is down, or not probed yet) is +Inf, never the last value seen: a
        # dead replica must not look caught up, and its staleness has no bound. Not NaN: under
        # gunicorn, livemax merges the workers' values with ">", which NaN never satisfies.
        replica_lag_seconds.labels(alias).set(math.inf if health.lag_seconds is None else health.lag_seconds)
        replica_lag_bytes.labels(alias).set(math.inf if health.lag_bytes is None else health.lag_bytes)
        replica_usable.labels(alias).set(1 if health.usable(max_staleness, max_bytes) else 0)
    for alias, result in probes.items():
        probe_duration_seconds.labels(alias).observe(result.duration)
        if not result.ok:
            probe_failures_total.labels(alias).inc()


def _allowed(request: HttpRequest) -> bool:
    if settings.DEBUG:
        return True
    from .conf import get_config

    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in get_config().metrics_allowed_networks)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """django-prometheus's exporter, answered only to allowed addresses outside DEBUG."""
    from django_prometheus.exports import ExportToDjangoView

    if not _allowed(request):
        return HttpResponseForbidden("metrics are not served to this address\n", content_type="text/plain")
    flush_reads()
    response: HttpResponse = ExportToDjangoView(request)
    return response
