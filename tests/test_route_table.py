"""The route table: the common case's verdict, worked out once per health snapshot."""

from __future__ import annotations

import dataclasses
import time

import pytest
from django.test import override_settings

from dbrouting import routing
from dbrouting.health import ReplicaHealth, cache
from dbrouting.strategies import LeastLag, Random, RoundRobin

from .conftest import usable, wait_until
from .routing_helpers import served_by
from .test_health import CONFIG, primary, replica, run


def healths(*lags: float) -> list[ReplicaHealth]:
    """One caught-up or behind replica per lag (seconds), probed just now, aliases r0, r1, ..."""
    out = []
    for i, lag in enumerate(lags):
        [health] = run([(replica(replay=1000, age=lag) if lag else replica(replay=1200), primary(lsn=1200))])
        out.append(dataclasses.replace(health, alias=f"r{i}"))
    return out


@pytest.mark.parametrize("lags", [(0.0,), (0.0, 0.0), (4.0,), (0.0, 4.0), (2.5, 4.9), (0.0, 0.01)])
def test_table__expires_exactly_when_a_replica_of_it_would_stop_being_usable(lags: tuple[float, ...]) -> None:
    candidates = healths(*lags)
    now = max(h.measured_at or 0 for h in candidates)
    max_age = routing._max_age(CONFIG)
    assert all(h.usable(CONFIG.max_staleness_seconds, None, now, max_age) for h in candidates)
    table = routing.route_table(CONFIG, {h.alias: h for h in candidates}, candidates, now)
    before, after = table.valid_until - 1e-6, table.valid_until + 1e-6
    assert all(h.usable(CONFIG.max_staleness_seconds, None, before, max_age) for h in candidates)
    assert not all(h.usable(CONFIG.max_staleness_seconds, None, after, max_age) for h in candidates)
    assert table.valid_until <= now + max_age  # the prober may have died: never longer than that


def test_round_robin__turns_go_on_across_snapshots() -> None:
    strategy = RoundRobin()
    a, b, c = healths(0, 0, 0)
    first = strategy.picker([a, b])
    picks = [first(), first(), first()]
    second = strategy.picker([a, b])  # the next probe round: same replicas
    picks += [second(), second(), second()]
    assert picks == ["r0", "r1", "r0", "r1", "r0", "r1"]
    third = strategy.picker([a, b, c])
    picks = [third() for _ in range(6)]
    assert sorted(picks) == ["r0", "r0", "r1", "r1", "r2", "r2"]


def test_least_lag_and_random__pick_only_candidates() -> None:
    fast, slow, tied = (dataclasses.replace(h, lag_bytes=n) for h, n in zip(healths(0, 0, 0), (0, 500, 0), strict=True))
    least = LeastLag().picker([fast, slow, tied])
    assert sorted(least() for _ in range(4)) == ["r0", "r0", "r2", "r2"]
    pick = Random().picker([fast, slow])
    assert {pick() for _ in range(200)} == {"r0", "r1"}


TIGHT = {"CHECK_INTERVAL_SECONDS": 0.2, "MAX_STALENESS_SECONDS": 1.0, "PROBE_TIMEOUT_SECONDS": 1.0}


@pytest.mark.usefixtures("warm_health")
@override_settings(DBROUTING=TIGHT)
def test_stalled_prober__reads_leave_the_replicas_once_the_snapshot_is_too_old(
    monkeypatch: pytest.MonkeyPatch, one_gist: object
) -> None:
    wait_until(lambda: usable("replica1") and usable("replica2"), what="replicas usable")
    assert served_by().startswith("replica")
    monkeypatch.setattr(cache, "refresh", lambda: cache.latest)  # the prober runs but learns nothing
    stalled = time.monotonic()
    wait_until(lambda: served_by() == "default", timeout=10, what="reads on the primary")
    left_after = time.monotonic() - stalled
    max_age = 3 * 0.2 + 2 * 1.0
    assert left_after <= max_age + 0.5, left_after
    monkeypatch.undo()
    wait_until(lambda: served_by().startswith("replica"), what="reads on the replicas again")


@pytest.fixture
def one_gist(live_db: None) -> object:
    from .factories import make_gist

    return make_gist(title="route table")
