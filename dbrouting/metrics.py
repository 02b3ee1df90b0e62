"""Prometheus metrics of the router, in one place.

Gauges are set by the health cache after each probe round, not computed per scrape. Under
gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` set, each worker writes its own values and the
``multiprocess_mode`` of each gauge says how they combine (see README, "Metrics").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
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

_read_children: dict[tuple[str, str], Any] = {}


def count_read(alias: str, reason: str) -> None:
    child = _read_children.get((alias, reason))
    if child is None:  # labels() takes a lock and builds a key: once per pair, not per read
        child = _read_children[(alias, reason)] = reads_total.labels(alias, reason)
    child.inc()


def observe_round(healths: Mapping[str, Any], probes: Mapping[str, Any], max_staleness: float, max_bytes: Any) -> None:
    """Called by the health cache after each probe round."""
    for alias, health in healths.items():
        if health.lag_seconds is not None and health.lag_seconds != float("inf"):
            replica_lag_seconds.labels(alias).set(health.lag_seconds)
        if health.lag_bytes is not None:
            replica_lag_bytes.labels(alias).set(health.lag_bytes)
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
    response: HttpResponse = ExportToDjangoView(request)
    return response
