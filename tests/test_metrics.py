"""The router's Prometheus metrics, by how much they change (no database)."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY

from dbrouting import routing_scope
from dbrouting.assessment import DOWN, OK, ReplicaHealth, Snapshot
from dbrouting.conf import get_config
from dbrouting.context import current_state
from dbrouting.metrics import count_reads, observe_probes, observe_snapshot
from dbrouting.probe import PrimaryProbe, ReplicaProbe


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_count_reads__adds_each_alias_and_reason() -> None:
    before = value("dbrouting_reads_total", alias="m1", reason="replica")
    count_reads({("m1", "replica"): 3, ("m1", "pinned"): 0})
    count_reads({("m1", "replica"): 2})
    assert value("dbrouting_reads_total", alias="m1", reason="replica") - before == 5


def test_a_scope__counts_its_reads_once_when_it_ends() -> None:
    before = value("dbrouting_reads_total", alias="m2", reason="replica")
    with routing_scope():
        state = current_state()
        state.replica, state.replica_reads = "m2", 4  # four reads of the common case
        assert state.reads is not None
        state.reads["m2", "replica"] = 1  # one of the scope's first read
        assert value("dbrouting_reads_total", alias="m2", reason="replica") == before
    assert value("dbrouting_reads_total", alias="m2", reason="replica") - before == 5


def test_usable_gauge__is_the_snapshots_usable_verdict() -> None:
    config = get_config()
    now = time.monotonic()
    fit = ReplicaHealth("replica1", state=OK, available=True, lag_seconds=0.0, lag_bytes=0, window_lag_seconds=0.0,
                        window_lag_bytes=0, measured_at=now)  # fmt: skip
    aged = ReplicaHealth("replica2", state=OK, available=True, lag_seconds=0.0, lag_bytes=0, window_lag_seconds=0.0,
                         window_lag_bytes=0, measured_at=now - config.stall_limit - 1)  # fmt: skip
    snapshot = Snapshot({"replica1": fit, "replica2": aged})
    observe_snapshot(snapshot, config)
    assert set(snapshot.usable(config)) == {"replica1"}
    assert value("dbrouting_replica_usable", alias="replica1") == 1.0
    assert value("dbrouting_replica_usable", alias="replica2") == 0.0  # state "ok", but aged out
    observe_snapshot(Snapshot({"replica1": ReplicaHealth("replica1", state=DOWN)}), config)
    assert value("dbrouting_replica_usable", alias="replica1") == 0.0


def test_observe_probes__times_each_and_counts_failures() -> None:
    durations = value("dbrouting_probe_duration_seconds_count", alias="m3")
    failures = value("dbrouting_probe_failures_total", alias="m3")
    observe_probes([ReplicaProbe("m3", ok=True, duration=0.01), ReplicaProbe("m3", ok=False, duration=1.0)])
    assert value("dbrouting_probe_duration_seconds_count", alias="m3") - durations == 2
    assert value("dbrouting_probe_failures_total", alias="m3") - failures == 1


def test_tolerance_gauge__is_the_tolerance_in_force_degraded_mode_included() -> None:
    config = get_config()
    observe_snapshot(Snapshot({}), config)
    assert value("dbrouting_staleness_tolerance_seconds") == config.max_staleness_seconds
    away = PrimaryProbe("default", ok=False, duration=1.0, started=time.monotonic())
    observe_snapshot(Snapshot({}, away), config)
    outage = config.tolerance(primary_up=False)
    assert outage != config.max_staleness_seconds  # degraded mode's own (PRIMARY_OUTAGE_MAX_STALENESS_SECONDS)
    assert value("dbrouting_staleness_tolerance_seconds") == outage
