"""Routing against the real cluster: which node serves each read, as the server reports it."""

from __future__ import annotations

import contextvars
import signal
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import pytest
from django.db import connections, transaction
from django.test import override_settings
from pgcluster import Cluster

from dbrouting import max_staleness, replica_health, routing_scope, use_primary
from dbrouting.context import current_state, read_after_lsn
from dbrouting.health import cache
from dbrouting.router import PrimaryReplicaRouter, decide
from dbrouting.writes import note_write
from gists.models import Gist

from .conftest import usable, wait_for_replicas, wait_until
from .factories import make_gist
from .routing_helpers import (
    ReadLoop,
    as_another_client,
    decision,
    pause_replay,
    resume_replay,
    served_by,
    served_by_each,
)

pytestmark = pytest.mark.usefixtures("warm_health")

TIGHT = {"CHECK_INTERVAL_SECONDS": 0.2, "MAX_STALENESS_SECONDS": 1.0}


@pytest.fixture(autouse=True)
def one_gist(warm_health: None) -> Gist:
    return make_gist(title="routing")


def test_reads__of_successive_scopes_go_to_both_replicas_and_writes_to_the_primary() -> None:
    served = Counter(served_by_each(20))
    assert served == {"replica1": 10, "replica2": 10}  # round-robin, one pick per scope
    gist = Gist.objects.create(title="routed write", content="c", latitude=1, longitude=1)
    assert gist._state.db == "default"
    assert Gist.objects.using("default").filter(pk=gist.pk).exists()


def test_reads__after_a_write_are_pinned_to_the_primary_for_the_rest_of_the_scope() -> None:
    assert served_by().startswith("replica")
    Gist.objects.create(title="pin me", content="c", latitude=1, longitude=1)
    assert {served_by() for _ in range(5)} == {"default"}


def test_reads__in_atomic_blocks_at_any_depth_go_to_the_primary() -> None:
    with transaction.atomic():
        assert served_by() == "default"
        with transaction.atomic():
            assert served_by() == "default"
    assert served_by().startswith("replica")


def test_select_for_update__runs_on_the_primary() -> None:
    with transaction.atomic():
        row = Gist.objects.select_for_update().first()
        assert row is not None
        assert row._state.db == "default"


def test_use_primary__nests_and_restores() -> None:
    with use_primary():
        assert served_by() == "default"
        with use_primary():
            assert served_by() == "default"
        assert served_by() == "default"
    assert served_by().startswith("replica")

    @use_primary()
    def view() -> str:
        return served_by()

    assert view() == "default"
    assert served_by().startswith("replica")


def test_max_staleness__validates_its_argument() -> None:
    for bad in (-1, float("nan"), "5", None, True):
        with pytest.raises(ValueError, match="max_staleness"):
            max_staleness(bad)  # type: ignore[arg-type]


@override_settings(DBROUTING=TIGHT)
def test_paused_replica__leaves_once_its_lag_passes_the_tolerance_and_rejoins(replay_control: Cluster) -> None:
    wait_until(lambda: usable("replica1") and usable("replica2"))
    pause_replay(replay_control, "replica1")
    make_gist_on_primary()
    written = time.monotonic()
    wait_until(lambda: replica_health()["replica1"].state == "lagging", what="replica1 lagging")
    excluded_after = time.monotonic() - written
    # It left within one check interval (and a probe) of passing the 1 s tolerance; up to one
    # interval early, since staleness is counted from the last probe that saw it caught up.
    assert 1.0 - 0.2 - 0.05 <= excluded_after < 1.0 + 0.2 + 1.0, excluded_after
    assert set(served_by_each(10)) == {"replica2"}
    # A looser tolerance for one block still uses it; a tighter one does not change replica2.
    with max_staleness(3600):
        assert "replica1" in set(served_by_each(10))
    resume_replay(replay_control, "replica1")
    wait_until(lambda: usable("replica1"), what="replica1 rejoined")
    assert set(served_by_each(10)) == {"replica1", "replica2"}


@override_settings(DBROUTING=TIGHT)
def test_both_paused__reads_go_to_the_primary(replay_control: Cluster) -> None:
    pause_replay(replay_control, "replica1")
    pause_replay(replay_control, "replica2")
    make_gist_on_primary()
    wait_until(lambda: not usable("replica1") and not usable("replica2"))
    assert set(served_by_each(5)) == {"default"}
    with max_staleness(0):
        assert served_by() == "default"


@override_settings(DBROUTING=TIGHT)
def test_idle_cluster__replicas_stay_usable_longer_than_the_tolerance() -> None:
    wait_for_replicas()
    start = time.monotonic()
    # Three tolerances with no write at all: replay timestamps age, lag must not.
    while time.monotonic() - start < 3.0:
        assert usable("replica1")
        assert usable("replica2")
        time.sleep(0.1)
    assert replica_health()["replica1"].lag_seconds == 0.0


def test_max_staleness__zero_still_reads_a_caught_up_replica() -> None:
    wait_for_replicas()
    assert cache.wait_for_rounds(2)
    with max_staleness(0):
        assert served_by().startswith("replica")


@override_settings(DBROUTING={**TIGHT, "MAX_STALENESS_SECONDS": 3600, "MAX_LAG_BYTES": 4096})
def test_byte_limit__a_replica_further_behind_in_bytes_gets_no_reads_through_the_router(
    replay_control: Cluster,
) -> None:
    """Well within the staleness tolerance (an hour), replica1 is only too far behind in bytes."""
    wait_until(lambda: usable("replica1") and usable("replica2"))
    pause_replay(replay_control, "replica1")
    rows = [Gist(title="bytes", content="x" * 1000, latitude=0, longitude=0) for _ in range(20)]
    as_another_client(lambda: Gist.objects.using("default").bulk_create(rows))  # some 20 KB of WAL
    wait_until(lambda: replica_health()["replica1"].state == "lagging", what="replica1 past the byte limit")
    health = replica_health()["replica1"]
    assert (health.window_lag_bytes or 0) > 4096
    assert (health.window_lag_seconds or 0.0) < 3600
    assert set(served_by_each(6)) == {"replica2"}


def test_max_staleness__successive_scopes_still_take_turns() -> None:
    """Under a block's own tolerance the usable replicas are worked out anew and the strategy
    picks among them (not the common path's record): it must still take turns."""
    with max_staleness(3600):
        assert Counter(served_by_each(10)) == {"replica1": 5, "replica2": 5}


@pytest.mark.cluster
def test_refused_connection__before_the_cache_knows__falls_back_without_an_error(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """replica1 stops while the router still finds it usable (no probe meanwhile): a read sent
    there meets a refused connection, fails over, and marks it down; no error reaches the caller."""
    wait_until(lambda: usable("replica1") and usable("replica2"))
    snapshot = cache.snapshot()
    cache.reset()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(cache, "_ensure_running", lambda: None)  # no prober to notice first
            cache.latest = snapshot
            connections.close_all()  # no connection kept: the next read on replica1 connects
            cluster.stop("replica1", mode="immediate")
            served = served_by_each(4)  # round-robin: some of them begin on replica1
            assert "replica1" not in served
            assert replica_health()["replica1"].state == "down"  # marked down by the failed read
    finally:
        cluster.start("replica1")
    wait_until(lambda: usable("replica1"), what="replica1 readmitted")


@pytest.mark.cluster
def test_stopped_replica__reads_fail_over_with_zero_errors_and_it_rejoins(cluster: Cluster) -> None:
    loop = ReadLoop().start()
    wait_until(lambda: loop.served_since(0) >= {"replica1", "replica2"}, what="both replicas serving")
    try:
        cluster.stop("replica1", mode="immediate")
        stopped = time.monotonic()
        wait_until(lambda: replica_health()["replica1"].state == "down", what="replica1 marked down")
        down = time.monotonic()
        wait_until(lambda: len([t for t, _ in loop.served if t > down]) >= 10, what="ten reads while it is down")
        assert "replica1" not in loop.served_since(down)
        cluster.start("replica1")
        restarted = time.monotonic()
        wait_until(lambda: usable("replica1"), what="replica1 readmitted")
        wait_until(lambda: "replica1" in loop.served_since(restarted), what="reads on replica1 again")
    finally:
        loop.stop()
    assert loop.errors == []
    assert len([t for t, _ in loop.served if t > stopped]) > 10


@pytest.mark.cluster
def test_hung_replica__bounded_latency_and_zero_errors(cluster: Cluster) -> None:
    loop = ReadLoop().start()
    wait_until(lambda: loop.served_since(0) >= {"replica1", "replica2"}, what="both replicas serving")
    try:
        cluster.signal("replica1", signal.SIGSTOP)
        hung = time.monotonic()
        wait_until(lambda: replica_health()["replica1"].state == "down", what="replica1 marked down")
        wait_until(lambda: len([t for t, _ in loop.served if t > hung + 1]) > 20, what="reads continue")
    finally:
        cluster.signal("replica1", signal.SIGCONT)
        loop.stop()
    assert loop.errors == []
    # One read at most waits for detection (probe interval + probe timeout) or a connect timeout.
    assert max(loop.latencies) < 3.5, max(loop.latencies)
    wait_until(lambda: usable("replica1"), what="replica1 back after SIGCONT")


def make_gist_on_primary() -> None:
    as_another_client(  # another client's write: this test's reads stay unpinned
        lambda: Gist.objects.using("default").create(title="advance WAL", content="c", latitude=0, longitude=0)
    )


def test_health__a_caught_up_replica_shows_zero_lag_at_the_primarys_position() -> None:
    wait_for_replicas()
    assert cache.wait_for_rounds(2)  # probes begun after both replayed the primary's position

    def caught_up() -> bool:
        health = replica_health()
        return all(h.replay_lsn == h.primary_lsn and h.lag_bytes == 0 and h.lag_seconds == 0.0 for h in health.values())

    wait_until(caught_up, what="both replicas at the primary's position")  # (a probe between two commits)
    health = replica_health()
    assert set(health) == {"replica1", "replica2"}
    for h in health.values():
        assert (h.state, h.in_recovery, h.receiving) == ("ok", True, True)
        assert h.checked_at is not None
        assert abs(time.time() - h.checked_at) < 5


def test_probe_connections__are_separate_from_django_connections() -> None:
    served_by()
    with connections["default"].cursor() as cur:
        cur.execute(  # on this database: other processes of the machine may probe others
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbrouting-probe' "
            "AND datname = current_database()"
        )
        (count,) = cur.fetchone()
    assert count <= 1  # the prober's own connection to the primary, kept between rounds; not Django's


@pytest.mark.cluster
def test_promoted_replica__gets_no_reads_then_rejoins_once_rebuilt(cluster: Cluster) -> None:
    try:
        cluster.promote("replica2")
        wait_until(lambda: replica_health()["replica2"].state == "promoted", what="replica2 seen as promoted")
        assert set(served_by_each(6)) == {"replica1"}
    finally:
        cluster.rebuild("replica2")
    wait_for_replicas(["replica2"])
    wait_until(lambda: usable("replica2"), what="rebuilt replica2 usable")
    assert set(served_by_each(6)) == {"replica1", "replica2"}


# -- the decision, reason by reason -----------------------------------------------------------


def test_scope__every_read_of_one_scope_is_served_by_one_replica_as_the_servers_see_it() -> None:
    with routing_scope():
        served = {served_by() for _ in range(20)}
    assert len(served) == 1
    assert served <= {"replica1", "replica2"}


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (use_primary, "forced"),
        (lambda: transaction.atomic(using="default"), "atomic"),
        (lambda: read_after_lsn(2**62), "causal"),  # no replica has replayed that far
        (lambda: max_staleness(3600), "replica"),
        (nullcontext, "replica"),
    ],
)
def test_decision__each_block_gives_its_reason(block: Callable[[], Any], reason: str) -> None:
    with block():
        alias, why = decision()
    assert why == reason
    assert (alias == "default") is (reason != "replica")
    assert decision()[1] == "replica"  # the block is over


def test_decision__a_pinned_scope_an_unsafe_request_and_a_primary_instance_read_the_primary(one_gist: Gist) -> None:
    with routing_scope():
        note_write()
        assert decision() == ("default", "pinned")
    with routing_scope():
        current_state().primary_reads = True
        assert decision() == ("default", "unsafe_method")
    on_primary = Gist.objects.using("default").get(pk=one_gist.pk)
    assert decision(instance=on_primary) == ("default", "instance")
    with routing_scope():
        on_replica = Gist.objects.get(pk=one_gist.pk)
        assert on_replica._state.db.startswith("replica")
        with routing_scope():  # another scope, on the other replica
            current_state().replica = {"replica1": "replica2", "replica2": "replica1"}[on_replica._state.db]
            assert decision(instance=on_replica) == (on_replica._state.db, "replica")
    with routing_scope():  # this test's scope is pinned by now: the first nested scope wrote
        assert decision(instance=Gist(title="unsaved"))[1] == "replica"  # no node yet: the usual decision
    assert current_state().pinned


def test_decision__follows_a_settings_change_at_once() -> None:
    assert decision()[1] == "replica"
    with override_settings(DBROUTING={"REPLICAS": []}):
        assert decision() == ("default", "no_replicas")
    assert decision()[1] == "replica"


def test_decision__a_write_in_a_copy_of_the_context_pins_the_original() -> None:
    """Outside any routing scope, as in a task runner: the first read makes the routing state,
    so a write in a copied context (a task, a sync_to_async thread) pins it for everyone."""

    def scenario() -> list[str]:
        first = decide()
        contextvars.copy_context().run(note_write)
        return [first, decide()]

    first, after_write = contextvars.Context().run(scenario)
    assert first.startswith("replica")
    assert after_write == "default"


@override_settings(DBROUTING=TIGHT)
def test_scope__a_replica_that_leaves_is_replaced_only_by_one_that_has_replayed_as_far(
    replay_control: Cluster,
) -> None:
    """Monotonic reads: the scope saw replica1 at some position; replica2, paused behind it but
    within the tolerance, must not serve the scope when replica1 goes away."""
    wait_until(lambda: usable("replica1") and usable("replica2"))
    with max_staleness(3600):  # replica2 stays within the tolerance while paused
        pause_replay(replay_control, "replica2")
        make_gist_on_primary()
        wait_for_replicas(["replica1"])
        wait_until(
            lambda: (replica_health()["replica1"].replay_lsn or 0) > (replica_health()["replica2"].replay_lsn or 0)
        )
        with routing_scope():
            current_state().replica = None
            while served_by() != "replica1":  # a scope that reads replica1, caught up
                current_state().replica = None
                current_state().seen_lsn = None
            cache.mark_down("replica1", "test: gone mid-scope")
            assert decision() == ("default", "monotonic")
            assert served_by() == "default"
        with routing_scope():  # a new scope has no such past: replica2 serves it
            cache.mark_down("replica1", "test: still gone")
            assert served_by() == "replica2"


@override_settings(DBROUTING={**TIGHT, "PROBE_TIMEOUT_SECONDS": 1.0})
def test_stalled_prober__reads_leave_the_replicas_once_the_snapshot_is_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    wait_until(lambda: usable("replica1") and usable("replica2"), what="replicas usable")
    assert served_by_each(1)[0].startswith("replica")
    monkeypatch.setattr(cache, "refresh", lambda: cache.latest)  # the prober runs but learns nothing
    stalled = time.monotonic()
    wait_until(lambda: served_by_each(1) == ["default"], timeout=10, what="reads on the primary")
    left_after = time.monotonic() - stalled
    stall_limit = 3 * 0.2 + 2 * 1.0
    assert left_after <= stall_limit + 1.5, left_after  # a probe round or two of slack on a busy machine
    monkeypatch.undo()
    wait_until(lambda: served_by_each(1)[0].startswith("replica"), what="reads on the replicas again")


def test_decision__the_reads_of_a_scope_that_changes_replica_are_counted_on_each() -> None:
    with routing_scope():
        first = decide()
        for _ in range(3):
            assert decide() == first
        cache.mark_down(first, "test: gone mid-scope")
        second = decide()
        assert second not in (first, "default")
        assert current_state().tally() == {(first, "replica"): 4, (second, "replica"): 1}


def test_decision__an_instance_of_another_database_is_left_to_other_routers() -> None:
    other = Gist(title="elsewhere")
    other._state.db = "archive"
    assert PrimaryReplicaRouter().db_for_read(Gist, instance=other) is None
