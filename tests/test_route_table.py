"""The route table: the common case's verdict, worked out once per health snapshot."""

from __future__ import annotations

import contextvars
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from django.db.utils import ConnectionRouter
from django.test import override_settings

from dbrouting import max_staleness, routing, routing_scope, use_primary
from dbrouting.assessment import ReplicaHealth
from dbrouting.context import current_state, is_forced, read_after_lsn, set_migrating
from dbrouting.health import cache
from dbrouting.router import PrimaryReplicaRouter
from dbrouting.strategies import LeastLag, Random, RoundRobin
from gists.models import Gist

from .conftest import usable, wait_until
from .routing_helpers import served_by
from .test_assessment import CONFIG, primary, replica, run


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
    assert left_after <= max_age + 1.5, left_after  # a probe round or two of slack on a busy machine
    monkeypatch.undo()
    wait_until(lambda: served_by().startswith("replica"), what="reads on the replicas again")


@pytest.fixture
def one_gist(live_db: None) -> object:
    from .factories import make_gist

    return make_gist(title="route table")


@pytest.fixture
def warm_table(warm_health: None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A route table for a snapshot that stays current (the prober runs but learns nothing, for
    the few seconds the table lives), and the list of calls of the full decision."""
    monkeypatch.setattr(cache, "refresh", lambda: cache.latest)
    assert routing.read_alias().startswith("replica")  # makes the table for this snapshot
    calls: list[str] = []
    full = routing.choose_read

    def spy(*args: Any, **kwargs: Any) -> tuple[str, str]:
        answer = full(*args, **kwargs)
        calls.append(answer[1])
        return answer

    monkeypatch.setattr(routing, "choose_read", spy)
    return calls


def test_fast_path__takes_the_table_in_the_common_case(warm_table: list[str]) -> None:
    picks = [routing.read_alias() for _ in range(10)]
    assert warm_table == []
    assert picks == [picks[0], picks[1]] * 5
    assert {picks[0], picks[1]} == {"replica1", "replica2"}
    router = PrimaryReplicaRouter()
    assert router.db_for_read(Gist).startswith("replica")
    assert PrimaryReplicaRouter.db_for_read(router, Gist).startswith("replica")  # unbound, from a subclass
    assert ConnectionRouter([router]).db_for_read(Gist).startswith("replica")
    assert warm_table == []


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (use_primary, "forced"),
        (lambda: transaction.atomic(using="default"), "atomic"),
        (lambda: read_after_lsn(2**62), "causal"),
        (lambda: max_staleness(3600), "replica"),
    ],
)
def test_fast_path__gives_way_to_every_block(warm_table: list[str], block: Callable[[], Any], reason: str) -> None:
    with block():
        alias = routing.read_alias()
    assert warm_table == [reason]
    assert (alias == "default") is (reason != "replica")
    routing.read_alias()
    assert warm_table == [reason]  # the table again, once the block is over


def test_fast_path__gives_way_to_a_pin_a_causal_token_migrations_and_a_failed_replica(warm_table: list[str]) -> None:
    with routing_scope():
        routing.note_write()
        assert routing.read_alias() == "default"
    with routing_scope():
        current_state().token_lsn = 2**62
        assert routing.read_alias() == "default"
    set_migrating(True)
    try:
        assert routing.read_alias() == "default"
    finally:
        set_migrating(False)
    assert warm_table == ["pinned", "causal", "forced"]
    cache.mark_down("replica1", "test")
    assert {routing.read_alias() for _ in range(4)} == {"replica2"}


def test_fast_path__drops_its_table_when_the_settings_change(warm_table: list[str]) -> None:
    with override_settings(DBROUTING={"REPLICAS": []}):
        assert routing.read_alias() == "default"
    assert warm_table == ["no_replicas"]


def test_fast_path__a_write_in_a_copy_of_the_context_pins_the_original(warm_table: list[str]) -> None:
    """Outside any routing scope, as in a task runner: the first read makes the routing state,
    so a write in a copied context (a task, a sync_to_async thread) pins it for everyone."""

    def scenario() -> list[str]:
        first = routing.read_alias()
        contextvars.copy_context().run(routing.note_write)
        return [first, routing.read_alias()]

    # Without the served-by header, a read records nothing in the routing state: nothing else
    # would make one. The table for these settings is made first, in this test's context.
    with override_settings(DBROUTING={**settings.DBROUTING, "SERVED_BY_HEADER": False}):
        assert routing.read_alias().startswith("replica")
        first, after_write = contextvars.Context().run(scenario)
    assert first.startswith("replica")
    assert after_write == "default"


def test_set_migrating__is_not_undone_by_the_end_of_a_block() -> None:
    set_migrating(True)
    try:
        with max_staleness(3):
            set_migrating(False)
        assert not is_forced()
        with use_primary():
            set_migrating(True)
        assert is_forced()
    finally:
        set_migrating(False)
    assert not is_forced()
