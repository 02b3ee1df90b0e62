"""Every replica behind at once, on the real cluster: each ALL_BEHIND_POLICY routes as specified,
reads that must be fresh never degrade, the hard ceiling holds, and an operator's override
reaches the router through the primary's probe."""

from __future__ import annotations

import contextvars
import io
import logging
import time
from collections import Counter

import pytest
from django.core.management import call_command
from django.db import connections, transaction
from django.test import Client, override_settings
from pgcluster import Cluster
from prometheus_client import REGISTRY

from dbrouting import max_staleness, replica_health, routing_scope, use_primary, when_all_behind
from dbrouting import router as router_module
from dbrouting.assessment import Snapshot
from dbrouting.conf import get_config
from dbrouting.context import read_after_lsn
from dbrouting.health import cache
from dbrouting.probe import PrimaryProbe
from dbrouting.router import decide
from dbrouting.status import measure
from gists.models import Gist

from .conftest import usable, wait_until
from .factories import make_gist
from .routing_helpers import as_another_client, decision, pause_replay, served_by

pytestmark = pytest.mark.usefixtures("warm_health")

TIGHT = {"CHECK_INTERVAL_SECONDS": 0.2, "MAX_STALENESS_SECONDS": 1.0, "MAX_STALENESS_HARD_SECONDS": 60.0}


def write_on_primary() -> None:
    as_another_client(lambda: Gist.objects.using("default").create(title="wal", content="c", latitude=0, longitude=0))


def staleness(alias: str) -> float:
    return replica_health()[alias].staleness(time.monotonic())


@pytest.fixture
def both_behind(replay_control: Cluster) -> Cluster:
    """replica1 paused first, replica2 1.5 s later, a write after each: both past the 1 s
    tolerance, replica2 the less lagged by more than the tolerance (only it counts as the least
    lagged)."""
    make_gist(title="all behind")
    wait_until(lambda: usable("replica1") and usable("replica2"))
    pause_replay(replay_control, "replica1")
    write_on_primary()
    wait_until(lambda: staleness("replica1") > 1.5, what="replica1 1.5 s behind")
    pause_replay(replay_control, "replica2")
    write_on_primary()
    wait_until(lambda: not usable("replica1") and not usable("replica2"), what="both past the tolerance")
    return replay_control


@override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "least_lagged"})
def test_least_lagged__reads_the_least_lagged_replica_marked_stale_then_the_primary_past_the_ceiling(
    both_behind: Cluster, client: Client
) -> None:
    assert staleness("replica2") < staleness("replica1")
    with routing_scope():
        assert decision() == ("replica2", "stale")
        assert served_by() == "replica2"  # as the server sees it
    before = REGISTRY.get_sample_value("dbrouting_reads_total", {"alias": "replica2", "reason": "stale"}) or 0.0
    response = client.get("/api/gists/")
    assert response.status_code == 200
    assert float(response["X-DB-Stale"]) > 1.0  # past the tolerance, and said so
    assert REGISTRY.get_sample_value("dbrouting_reads_total", {"alias": "replica2", "reason": "stale"}) > before
    assert REGISTRY.get_sample_value("dbrouting_all_replicas_behind") == 1.0
    # The hard ceiling: once both are further behind than it, the primary, whatever the policy.
    with override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "least_lagged", "MAX_STALENESS_HARD_SECONDS": 2}):
        wait_until(lambda: staleness("replica2") > 2.0, what="replica2 past the hard ceiling")
        with routing_scope():
            assert decision() == ("default", "no_usable_replica")
            assert served_by() == "default"
        assert "X-DB-Stale" not in client.get("/api/gists/")
        report = measure(fresh=False, replication=False)
        assert any("past the hard ceiling (2 s): reads on the primary" in line for line in report.errors), report.errors


@override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "least_lagged"})
def test_least_lagged__replicas_about_as_far_behind_share_the_reads(replay_control: Cluster) -> None:
    make_gist(title="all behind")
    wait_until(lambda: usable("replica1") and usable("replica2"))
    for alias in ("replica1", "replica2"):
        pause_replay(replay_control, alias)
    write_on_primary()
    wait_until(lambda: not usable("replica1") and not usable("replica2"), what="both past the tolerance")
    chosen = []
    for _ in range(4):
        with routing_scope():
            alias, reason = decision()
            assert reason == "stale"
            assert served_by() == alias
            chosen.append(alias)
    assert set(chosen) == {"replica1", "replica2"}  # the strategy's turns, among the least lagged


@override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "least_lagged"})
def test_least_lagged__in_a_max_staleness_block_its_tolerance_says_which_are_about_as_fresh(
    both_behind: Cluster,
) -> None:
    # replica1 is ~1.5 s behind replica2: more than the site's 1 s, less than the block's 4 s.
    wait_until(lambda: staleness("replica2") > 4.0, what="replica2 past the block's tolerance")
    chosen = []
    for _ in range(4):
        with routing_scope(), max_staleness(4.0), when_all_behind("least_lagged"):
            alias, reason = decision()
            assert reason == "stale"
            chosen.append(alias)
    assert set(chosen) == {"replica1", "replica2"}


@override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "least_lagged"})
def test_least_lagged__reads_that_must_be_fresh_never_degrade(both_behind: Cluster) -> None:
    with routing_scope(), use_primary():
        assert decision() == ("default", "forced")
    with routing_scope(), transaction.atomic():
        assert decision() == ("default", "atomic")
    with routing_scope():
        Gist.objects.create(title="a write in the scope", content="c", latitude=0, longitude=0)
        assert decision() == ("default", "pinned")
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn() - '0/0'")
        position = int(cursor.fetchone()[0])
    with routing_scope(), read_after_lsn(position):  # a causal token no replica has replayed
        assert decision() == ("default", "no_usable_replica")
        assert served_by() == "default"


@override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "budget", "PRIMARY_READ_BUDGET": 3})
def test_budget__the_primary_takes_its_budget_of_reads_a_scope_stays_where_it_began_the_rest_least_lagged(
    both_behind: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(router_module, "_budget", router_module._Budget())
    started = time.monotonic()
    first: Counter[tuple[str, str]] = Counter()
    for _ in range(20):
        with routing_scope():  # three reads a scope
            chosen = decision()
            first[chosen] += 1
            assert decision() == chosen  # a scope stays where it began (monotonic reads)
            assert served_by() == chosen[0]
    elapsed = time.monotonic() - started
    # A full bucket (3 reads) at first, then 3 a second; a scope begun on it may overdraw it by
    # its own later reads. The other scopes read replica2, stale.
    primary_reads = 3 * first[("default", "budget")]
    assert 3 <= primary_reads <= 3 + 3 * elapsed + 3, (first, elapsed)
    assert first[("replica2", "stale")] == 20 - first[("default", "budget")] > 0


@override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "budget", "PRIMARY_READ_BUDGET": 0})
def test_budget__of_zero_sends_no_read_to_the_primary(both_behind: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "_budget", router_module._Budget())
    for _ in range(5):
        with routing_scope():
            assert decision() == ("replica2", "stale")


@override_settings(DBROUTING=TIGHT)
def test_blocks__when_all_behind_beats_the_site_and_max_staleness_degrades_only_with_it(both_behind: Cluster) -> None:
    with routing_scope():
        assert decision() == ("default", "no_usable_replica")  # the site's "primary"
    with routing_scope(), when_all_behind("least_lagged"):
        assert decision() == ("replica2", "stale")
        with when_all_behind("primary"):  # the innermost wins
            assert decision() == ("default", "no_usable_replica")
    with routing_scope(), max_staleness(0.5), when_all_behind("least_lagged"):
        assert decision() == ("replica2", "stale")  # a block's tolerance degrades under a policy entered within it
    with routing_scope(), when_all_behind("least_lagged"), max_staleness(0.5):
        assert decision() == ("default", "no_usable_replica")  # a helper's max_staleness() keeps its promise
    # A max_staleness() block is a promise of freshness: the site's policy does not break it.
    with (
        override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "least_lagged"}),
        routing_scope(),
        max_staleness(0.5),
    ):
        assert decision() == ("default", "no_usable_replica")
    with pytest.raises(ValueError, match="when_all_behind"):
        when_all_behind("stale")


@override_settings(DBROUTING=TIGHT)
def test_operator_override__reaches_the_router_gauge_and_status_through_the_primary_probe(
    both_behind: Cluster, override_cleared: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dbrouting")
    assert cache.snapshot().policy(get_config()) == "primary"
    call_command("replica_policy", "least_lagged", "--minutes", "5", "--reason", "backfill", stdout=io.StringIO())
    wait_until(lambda: cache.snapshot().policy(get_config()) == "least_lagged", what="the override probed")
    with routing_scope():
        assert decision() == ("replica2", "stale")
    assert REGISTRY.get_sample_value("dbrouting_all_behind_policy", {"policy": "least_lagged"}) == 1.0
    assert REGISTRY.get_sample_value("dbrouting_all_behind_policy", {"policy": "primary"}) == 0.0
    report = measure(fresh=False, replication=False)
    assert (report.all_behind_policy, report.all_behind, report.all_behind_override) == ("least_lagged", True, True)
    assert any("stale reads from replica1, replica2" in line for line in report.errors), report.errors
    wait_until(lambda: "all-behind policy now 'least_lagged'" in caplog.text, what="the change logged")
    # An operator's "primary" stops stale reads everywhere, a view's when_all_behind() included.
    with routing_scope(), when_all_behind("least_lagged"):
        assert decision() == ("replica2", "stale")
    call_command("replica_policy", "primary", stdout=io.StringIO())
    wait_until(lambda: cache.snapshot().override() == "primary", what="the operator's primary probed")
    with routing_scope(), when_all_behind("least_lagged"):
        assert decision() == ("default", "no_usable_replica")
    call_command("replica_policy", "--clear", stdout=io.StringIO())
    wait_until(lambda: cache.snapshot().policy(get_config()) == "primary", what="the override gone")
    with routing_scope():
        assert decision() == ("default", "no_usable_replica")


@override_settings(DBROUTING=TIGHT)
def test_all_behind__gauge_and_one_log_line_at_each_end(
    replay_control: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dbrouting")
    wait_until(lambda: usable("replica1") and usable("replica2"))
    assert REGISTRY.get_sample_value("dbrouting_all_replicas_behind") == 0.0
    for alias in ("replica1", "replica2"):
        pause_replay(replay_control, alias)
    write_on_primary()
    wait_until(lambda: REGISTRY.get_sample_value("dbrouting_all_replicas_behind") == 1.0, what="the gauge")
    wait_until(lambda: "no replica is within the tolerance (1 s): reads follow the 'primary' policy" in caplog.text)
    replay_control.psql(replay_control.node("replica2"), "SELECT pg_wal_replay_resume()")
    wait_until(lambda: REGISTRY.get_sample_value("dbrouting_all_replicas_behind") == 0.0, what="the gauge back")
    wait_until(lambda: "reads back on the replicas" in caplog.text, what="the end logged")
    assert caplog.text.count("no replica is within the tolerance") == 1
    assert caplog.text.count("reads back on the replicas") == 1


@override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "least_lagged"})
def test_least_lagged__a_scope_that_read_the_primary_never_reads_a_stale_replica_after(both_behind: Cluster) -> None:
    with routing_scope():
        with use_primary():
            assert decision() == ("default", "forced")
        assert decision() == ("default", "no_usable_replica")  # a stale replica would go back in time
    with routing_scope():
        assert decision() == ("replica2", "stale")


@override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "least_lagged"})
def test_least_lagged__a_scope_never_moves_to_a_replica_that_has_replayed_less(both_behind: Cluster) -> None:
    with routing_scope():
        assert decision() == ("replica2", "stale")  # the least lagged: it has replayed more than replica1
        # replica2 fails this read (the engine's failover excludes it): replica1 would go back in time.
        assert decision(exclude=("replica2",)) == ("default", "no_usable_replica")
    with routing_scope():
        assert decision(exclude=("replica2",)) == ("replica1", "stale")  # a new scope may read it


@override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "least_lagged", "PIN_AFTER_WRITE": False})
def test_least_lagged__a_scope_that_wrote_never_reads_a_stale_replica_even_unpinned(both_behind: Cluster) -> None:
    with routing_scope():
        Gist.objects.create(title="a write", content="c", latitude=0, longitude=0)
        assert decision() == ("default", "no_usable_replica")


@override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "budget", "PRIMARY_READ_BUDGET": 1000})
def test_budget__outside_a_routing_scope_is_not_used(both_behind: Cluster) -> None:
    """A thread's own state never ends: no scope to keep on the primary, so no budget."""
    assert contextvars.Context().run(decide) == "replica2"  # stale; the budget would have said the primary


@override_settings(DBROUTING={**TIGHT, "ALL_BEHIND_POLICY": "budget", "PRIMARY_READ_BUDGET": 1000})
def test_least_lagged__never_while_the_primary_is_away(both_behind: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Degraded mode has its own bound (PRIMARY_OUTAGE_MAX_STALENESS_SECONDS): the all-behind
    policy does not apply, nor does the budget send reads to the absent primary."""
    with routing_scope():
        assert decision() == ("default", "budget")
    snapshot = cache.snapshot()
    cache.reset()
    away = PrimaryProbe("default", ok=False, duration=1.0, started=time.monotonic(), error="gone")
    outage = {**TIGHT, "ALL_BEHIND_POLICY": "budget", "PRIMARY_OUTAGE_MAX_STALENESS_SECONDS": 0}
    with monkeypatch.context() as patch, override_settings(DBROUTING=outage), routing_scope():
        patch.setattr(cache, "_ensure_running", lambda: None)  # no prober to replace this snapshot meanwhile
        cache.latest = Snapshot(snapshot.replicas, away, snapshot.last_good)
        assert not cache.latest.all_behind(get_config())
        assert decision() == ("default", "no_usable_replica")


def test_budget__a_token_bucket_with_a_bounded_debt(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(router_module, "_monotonic", lambda: clock[0])
    bucket = router_module._Budget()
    assert [bucket.take(2.0) for _ in range(3)] == [True, True, False]  # full at first: a second's worth
    clock[0] += 0.5
    assert [bucket.take(2.0) for _ in range(2)] == [True, False]  # 2 a second
    assert all(bucket.take(2.0, debt=True) for _ in range(100))  # a scope on it overdraws...
    clock[0] += 1.0
    assert bucket.take(2.0) is False  # ...by a second's worth at most: refilled to 0 after one second
    clock[0] += 0.5
    assert bucket.take(2.0) is True
    assert router_module._Budget().take(0.0) is False  # a budget of 0: never the primary
