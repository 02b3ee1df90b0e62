"""The health assessment, probe by probe (no database: probes are given)."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest

from dbrouting.assessment import ReplicaHealth, Snapshot, assess, marked_down
from dbrouting.conf import Config
from dbrouting.probe import PrimaryProbe, ReplicaProbe
from dbrouting.strategies import RoundRobin

CONFIG = Config(
    replicas=("r",), primary="default", max_staleness_seconds=5.0, max_lag_bytes=1000, all_behind_policy="primary",
    max_staleness_hard_seconds=60.0, primary_read_budget=50.0,
    check_interval_seconds=0.5, probe_scope="process", runtime_dir=None, connect_timeout_seconds=2,
    probe_timeout_seconds=1,
    primary_outage_max_staleness_seconds=0.0, strategy=RoundRobin(), rejoin_after_checks=2, pin_after_write=True,
    primary_read_methods=frozenset({"POST"}), token_store=None, causal_cookie_name="c",
    causal_token_max_age_seconds=60, served_by_header=False, metrics_allowed_networks=("127.0.0.1/32",),
    lag_history_seconds=600.0,
)  # fmt: skip


def fit(health: ReplicaHealth, tolerance: float, max_lag_bytes: int | None = None, **at: float) -> bool:
    """``usable`` at ``now`` (default: the moment of the probe), with no stall limit unless given."""
    now = at.get("now", health.measured_at if health.measured_at is not None else time.monotonic())
    return health.usable(tolerance, max_lag_bytes, at.get("stall_limit", math.inf), now)


def primary(lsn: int | None = 1000, ok: bool = True) -> PrimaryProbe:
    return PrimaryProbe(
        "default", ok=ok, duration=0.001, started=time.monotonic(), lsn=lsn if ok else None, system_identifier=1
    )


def replica(replay: int = 1000, receive: int | None = None, age: float | None = 3600.0, **kw: object) -> ReplicaProbe:
    fields = {"ok": True, "in_recovery": True, "wal_receiver_status": "streaming", "system_identifier": 1, **kw}
    return ReplicaProbe(
        "r", duration=0.001, started=time.monotonic(), receive_lsn=receive if receive is not None else replay,
        replay_lsn=replay, replay_age_seconds=age, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def run(probes: list[tuple[ReplicaProbe, PrimaryProbe]], config: Config = CONFIG) -> list[ReplicaHealth]:
    """Assess probe after probe, as the health cache does (the primary's last known position too)."""
    health, last_good, out = ReplicaHealth("r"), None, []
    for result, prim in probes:
        health = assess(health, result, prim, config, last_good)
        last_good = prim if prim.ok else last_good
        out.append(health)
    return out


def test_idle_primary__a_caught_up_replica_has_zero_lag_however_old_its_last_replay() -> None:
    [health] = run([(replica(replay=1000, age=86_400.0), primary(lsn=1000))])
    assert health.lag_seconds == 0.0
    assert health.lag_bytes == 0
    assert health.state == "ok"
    assert fit(health, 0.0, None)


def test_behind__lag_is_the_tighter_of_replay_age_and_time_since_caught_up() -> None:
    results = run([(replica(replay=1000), primary(lsn=1000)), (replica(replay=1000, age=9.0), primary(lsn=5000))])
    behind = results[-1]
    assert behind.lag_bytes == 4000
    # Caught up a moment ago at the previous probe: far less than the 9 s replay age.
    assert behind.lag_seconds is not None
    assert behind.lag_seconds < 1.0
    assert behind.state == "lagging"  # 4000 bytes > MAX_LAG_BYTES 1000


def test_behind_with_no_history__uses_the_replay_age() -> None:
    [health] = run([(replica(replay=1000, age=7.5), primary(lsn=1200))])
    assert health.lag_seconds == 7.5
    assert health.state == "lagging"
    assert not fit(health, 5.0, None)
    assert fit(health, 10.0, None)


def test_hysteresis__leaves_at_the_first_bad_probe_and_rejoins_after_two_good_ones() -> None:
    good = (replica(), primary())
    bad = (replica(ok=False, error="connection refused", in_recovery=None), primary())
    states = [h.available for h in run([good, bad, good, good, good])]
    assert states == [True, False, False, True, True]


def test_hysteresis__lag_window_keeps_a_replica_out_for_two_probes_after_catching_up() -> None:
    lagging = (replica(replay=1000, age=60.0), primary(lsn=2000))
    caught_up = (replica(replay=2000), primary(lsn=2000))
    usable = [fit(h, 5.0, None) for h in run([lagging, caught_up, caught_up, caught_up])]
    assert usable == [False, False, True, True]


def test_promoted_replica__is_not_usable() -> None:
    [health] = run([(replica(in_recovery=False), primary())])
    assert health.state == "promoted"
    assert not fit(health, 1e9, None)


def test_not_streaming__behind_the_primary_past_the_tolerance_is_not_usable() -> None:
    [health] = run([(replica(replay=1000, age=60.0, wal_receiver_status=None), primary(lsn=2000))])
    assert health.state == "not_streaming"
    assert not fit(health, 1e9, None)


def test_not_streaming__a_receiver_that_just_stopped_keeps_serving_within_the_tolerance() -> None:
    # The primary restarts: the replica's receiver stops a moment before the primary's probe fails.
    streaming = (replica(replay=5000), primary(lsn=5000))
    stopped = (replica(replay=5000, age=0.5, wal_receiver_status="waiting"), primary(lsn=5100))
    health = run([streaming, stopped])[-1]
    assert health.state == "ok"
    assert fit(health, 5.0, None)
    assert health.receiving is False


def test_primary_probe_failed__lag_is_not_zero_and_grows_from_the_last_known_position() -> None:
    # A failed probe does not mean nothing commits: the primary may be busy or cut off from us.
    seen = run([(replica(replay=3000), primary(lsn=3000)), (replica(replay=3000, age=3600.0), primary(ok=False))])
    assert seen[0].lag_seconds == 0.0
    assert seen[1].lag_seconds is not None
    assert 0.0 < seen[1].lag_seconds < 1.0  # the time since it was seen caught up, not the hour
    assert seen[1].primary_lsn is None
    assert seen[1].lag_bytes == 0  # against the last known position, 3000
    behind = run([(replica(replay=3000), primary(lsn=3500)), (replica(replay=3000, age=2.0), primary(ok=False))])
    assert behind[1].lag_bytes == 500


def test_primary_unreachable__a_replica_not_receiving_serves_only_within_the_tolerance() -> None:
    # A primary restart: the replica's WAL receiver stops too. It has every commit up to when it
    # was last seen at the primary's position, and its lag grows from there.
    caught_up = (replica(replay=3000), primary(lsn=3000))
    cut_off = (replica(replay=3000, age=3600.0, wal_receiver_status=None), primary(ok=False))
    health = run([caught_up, cut_off])[-1]
    assert health.state == "ok"
    assert health.lag_seconds is not None
    assert 0 < health.lag_seconds < 1
    assert health.measured_at is not None
    assert fit(health, 5.0, None, now=health.measured_at + 1)
    assert not fit(health, 5.0, None, now=health.measured_at + 6)
    # Never seen caught up: only the replay age bounds it, an hour here.
    assert not fit(run([cut_off])[-1], 5.0, None)


def test_foreign_server__a_standby_of_another_cluster_is_not_usable() -> None:
    prim = PrimaryProbe("default", ok=True, duration=0.0, started=time.monotonic(), lsn=10, system_identifier=1)
    rep = replica(replay=10, system_identifier=2)
    [health] = run([(rep, prim)])
    assert health.state == "foreign"
    assert not fit(health, 1e9, None)


def test_clock_skew__a_slow_replica_clock_does_not_hide_its_lag() -> None:
    # The replica's clock is 10 s behind the primary's: its replay age reads 10 s too small.
    now = time.time()
    prim = PrimaryProbe(
        "default", ok=True, duration=0.0, started=time.monotonic(), lsn=5000, clock=now, system_identifier=1
    )
    rep = ReplicaProbe(
        "r", ok=True, duration=0.0, started=prim.started, in_recovery=True, wal_receiver_status="streaming",
        receive_lsn=5000, replay_lsn=1000, replay_age_seconds=0.0, clock=now - 10.0, system_identifier=1,
    )  # fmt: skip
    [health] = run([(rep, prim)])
    assert health.lag_seconds == pytest.approx(10.0, abs=0.1)


def test_replay_going_backwards__forgets_when_it_was_caught_up() -> None:
    results = run([(replica(replay=9000), primary(lsn=9000)), (replica(replay=1000, age=3600.0), primary(lsn=9000))])
    assert results[1].lag_seconds == 3600.0  # not "a moment since caught up"


def test_usable__counts_the_snapshot_age_for_a_replica_that_was_behind() -> None:
    [behind] = run([(replica(replay=1000, age=4.0), primary(lsn=1200))])
    [caught_up] = run([(replica(replay=1200), primary(lsn=1200))])
    later = (behind.measured_at or 0) + 2.0
    assert fit(behind, 5.0, None, now=(behind.measured_at or 0) + 0.5)
    assert not fit(behind, 5.0, None, now=later)  # 4 s then, 6 s now
    assert fit(caught_up, 5.0, None, now=later)
    assert not fit(caught_up, 5.0, None, now=later + 60, stall_limit=10)  # the prober stalled


@pytest.mark.parametrize("max_lag_bytes", [None, 10_000])
def test_max_lag_bytes__limits_only_when_set(max_lag_bytes: int | None) -> None:
    [health] = run([(replica(replay=1000, age=0.1), primary(lsn=6000))])
    assert fit(health, 5.0, max_lag_bytes)
    assert not fit(health, 5.0, 100)


def test_snapshot__keeps_its_usable_replicas_exactly_until_one_would_stop_being_usable() -> None:
    [behind] = run([(replica(replay=1000, age=2.0), primary(lsn=1200))])  # 2 s and 200 bytes behind
    [caught_up] = run([(replica(replay=1200), primary(lsn=1200))])
    caught_up = dataclasses.replace(caught_up, alias="c")
    config = dataclasses.replace(CONFIG, replicas=("r", "c"))
    snapshot = Snapshot({"r": behind, "c": caught_up})
    assert set(snapshot.usable(config)) == {"r", "c"}
    worked_for, until, usable = snapshot.default_usable
    assert worked_for is config
    assert set(usable) == {"r", "c"}
    assert until == pytest.approx((behind.measured_at or 0) + 5.0 - 2.0)  # when "r" passes the tolerance
    assert fit(behind, 5.0, 1000, now=until - 1e-6, stall_limit=config.stall_limit)
    assert not fit(behind, 5.0, 1000, now=until + 1e-6, stall_limit=config.stall_limit)
    assert set(snapshot.usable(config, tolerance=60.0)) == {"r", "c"}
    assert snapshot.default_usable[1] == until  # a block's own tolerance leaves the record alone


def test_degraded__with_the_primary_unreachable_replicas_serve_up_to_the_outage_tolerance() -> None:
    down = PrimaryProbe("default", ok=False, duration=0.001, started=time.monotonic(), error="refused")
    config = dataclasses.replace(CONFIG, replicas=("r", "s"), primary_outage_max_staleness_seconds=60.0)
    cut_off = {"wal_receiver_status": None}
    *_, fresh = run(
        [(replica(replay=3000), primary(lsn=3000)), (replica(replay=3000, age=30.0, **cut_off), down)], config
    )
    *_, stale = run(
        [(replica(replay=2000, age=20.0), primary(lsn=3000)), (replica(replay=2000, age=50.0, **cut_off), down)], config
    )
    stale = dataclasses.replace(stale, alias="s")
    assert fresh.state == "ok"  # not "not_streaming": its receiver has no primary to stream from
    seen = primary(lsn=3000)
    snapshot = Snapshot({"r": fresh, "s": stale}, down, last_good=seen)
    assert not snapshot.primary_up
    assert fresh.lag_seconds is not None
    assert fresh.lag_seconds < 1  # seen caught up a moment ago, not the 30 s since the last commit
    assert stale.state == "ok"  # 50 s: within the outage's 60
    assert set(snapshot.usable(config)) == {"r"}  # but 50 s behind "r": more than the usual 5 s
    assert set(snapshot.usable(config, tolerance=55.0)) == {"r", "s"}  # a block's own: no "freshest" rule
    off = dataclasses.replace(config, primary_outage_max_staleness_seconds=0.0)
    stale_alone = Snapshot({"s": stale}, down, last_good=seen)
    assert set(stale_alone.usable(config)) == {"s"}  # the freshest there is, within the outage's 60 s
    assert set(stale_alone.usable(off)) == set()  # no degraded mode: the usual 5 s, as before


def test_foreign_server__unverified_while_the_primary_has_never_answered_gets_no_reads() -> None:
    never = PrimaryProbe("default", ok=False, duration=0.0, started=time.monotonic(), error="refused")
    [health] = run([(replica(replay=10, system_identifier=2), never)])
    assert (health.state, health.reason) == ("foreign", "not verified as a standby of this primary: the primary "
                                             "has not answered yet")  # fmt: skip
    assert set(Snapshot({"r": health}, never).usable(CONFIG)) == set()
    answered = PrimaryProbe("default", ok=True, duration=0.0, started=time.monotonic(), lsn=10, system_identifier=2)
    # Once the primary answers and the identifiers match, it rejoins as any replica that left does.
    assert assess(health, replica(replay=10, system_identifier=2), answered, CONFIG, answered).state == "rejoining"


def test_foreign_server__is_known_while_the_primary_is_unreachable() -> None:
    down = PrimaryProbe("default", ok=False, duration=0.0, started=time.monotonic(), error="refused")
    first = PrimaryProbe("default", ok=True, duration=0.0, started=time.monotonic(), lsn=10, system_identifier=1)
    healths = run([(replica(replay=10, system_identifier=1), first), (replica(replay=10, system_identifier=2), down)])
    assert [h.state for h in healths] == ["ok", "foreign"]


def test_staleness__grows_after_a_lagging_probe_and_usable_holds_exactly_while_within_the_tolerance() -> None:
    [health] = run([(replica(replay=900, age=2.0), primary(lsn=1000))])
    at = health.measured_at or 0.0
    assert health.staleness(at) == pytest.approx(2.0)
    assert health.staleness(at + 1.5) == pytest.approx(3.5)
    assert fit(health, 3.4, now=at + 1.5) is False
    assert fit(health, 3.6, now=at + 1.5) is True
    [caught_up] = run([(replica(replay=1000), primary(lsn=1000))])
    assert caught_up.staleness((caught_up.measured_at or 0.0) + 100) == 0.0  # caught up: an idle primary ages nothing


def test_all_behind__only_while_a_replica_is_up_and_the_primary_answers() -> None:
    lagging = ReplicaHealth("r", state="lagging", available=True, lag_seconds=9.0, window_lag_seconds=9.0,
                            measured_at=time.monotonic())  # fmt: skip
    down = ReplicaHealth("r", state="down", available=False)
    up = primary()
    assert Snapshot({"r": lagging}, up, up).all_behind(CONFIG) is True
    assert Snapshot({"r": down}, up, up).all_behind(CONFIG) is False  # every replica down: nothing to degrade to
    away = primary(ok=False)
    assert Snapshot({"r": lagging}, away, up).all_behind(CONFIG) is False  # degraded mode has its own rules


def test_override__expires_on_this_host_too_while_the_primary_is_away() -> None:
    told = dataclasses.replace(primary(), policy="least_lagged", policy_until=time.time() + 60)
    assert Snapshot({}, primary(ok=False), told).policy(CONFIG) == "least_lagged"
    expired = dataclasses.replace(told, policy_until=time.time() - 1)
    assert Snapshot({}, primary(ok=False), expired).override() is None
    assert Snapshot({}, primary(ok=False), expired).policy(CONFIG) == "primary"


def test_assess__a_replica_that_cannot_serve_keeps_what_was_known_and_says_why() -> None:
    [known] = run([(replica(replay=1000), primary(lsn=1000))])
    known = dataclasses.replace(known, skew=0.25, marked_down_at=42.0)
    failed = ReplicaProbe("r", ok=False, duration=0.3, started=time.monotonic(), timed_out=True, error="timeout")
    down = assess(known, failed, primary(lsn=1100), CONFIG, None)
    assert (down.alias, down.state, down.reason, down.in_recovery, down.available) == (
        "r",
        "down",
        "timeout",
        None,
        False,
    )
    assert down.replay_lsn == 1000  # the last known position, when it cannot be asked
    assert (down.skew, down.marked_down_at, down.ever_left) == (0.25, 42.0, True)
    assert (down.measured_at, down.probe_seconds, down.hung) == (failed.started, 0.3, True)
    assert down.checked_at is not None
    assert abs(down.checked_at - time.time()) < 5
    promoted = assess(known, replica(replay=1200, in_recovery=False), primary(lsn=1100), CONFIG, None)
    assert (promoted.state, promoted.reason, promoted.in_recovery) == ("promoted", "not in recovery: promoted", False)
    assert (promoted.replay_lsn, promoted.hung) == (1200, False)


def test_assess__every_field_of_a_measured_replica_behind_the_primary() -> None:
    """Clocks 2 s apart: the replay age is read on the primary's clock (skew from the probes' midpoints)."""
    head = PrimaryProbe("default", ok=True, duration=0.004, started=99.9, lsn=5000, clock=1000.0, system_identifier=1)
    probe = ReplicaProbe(
        "r", ok=True, duration=0.002, started=100.0, in_recovery=True, receive_lsn=4500, replay_lsn=4001,
        replay_age_seconds=3.0, wal_receiver_status="streaming", clock=1002.0, system_identifier=1,
    )  # fmt: skip
    health = assess(ReplicaHealth("r"), probe, head, CONFIG, None)
    skew = (1002.0 - 1000.0) - ((100.0 + 0.001) - (99.9 + 0.002))
    assert health.skew == pytest.approx(skew)
    assert health.lag_seconds == pytest.approx(3.0 - skew)
    assert (health.lag_bytes, health.window_lag_bytes) == (999, 999)
    assert health.window_lag_seconds == health.lag_seconds
    assert health.window == ((health.lag_seconds, 999),)
    assert (health.alias, health.state, health.reason, health.available) == ("r", "ok", None, True)
    assert (health.in_recovery, health.receiving, health.hung) == (True, True, False)
    assert (health.replay_lsn, health.receive_lsn, health.primary_lsn) == (4001, 4500, 5000)
    assert (health.measured_at, health.probe_seconds, health.good_streak, health.ever_left) == (100.0, 0.002, 1, False)
    assert health.caught_up_at is None
    assert health.checked_at is not None
    # At the primary's position the next probe says caught up: since the primary's probe began.
    caught = assess(health, dataclasses.replace(probe, replay_lsn=5000, receive_lsn=5000), head, CONFIG, head)
    assert (caught.lag_seconds, caught.lag_bytes, caught.caught_up_at, caught.good_streak) == (0.0, 0, 99.9, 2)
    assert caught.window == ((health.lag_seconds, 999), (0.0, 0))
    assert caught.window_lag_seconds == health.lag_seconds  # the worst of the window


@pytest.mark.parametrize(("age", "state"), [(5.0, "ok"), (5.01, "not_streaming")])
def test_availability__a_stopped_receiver_serves_up_to_the_tolerance_exactly(age: float, state: str) -> None:
    [health] = run([(replica(replay=5000, age=age, wal_receiver_status="waiting"), primary(lsn=5100))])
    assert health.lag_seconds == age
    assert health.state == state
    assert health.available is (state == "ok")


def test_states__each_says_why_exactly() -> None:
    [stopped] = run([(replica(replay=5000, receive=5050, wal_receiver_status=None), primary(lsn=5100))])
    assert (stopped.state, stopped.reason) == ("not_streaming", "WAL receiver not running")
    [waiting] = run([(replica(replay=5000, receive=5050, wal_receiver_status="waiting"), primary(lsn=5100))])
    assert (waiting.state, waiting.reason) == ("not_streaming", "WAL receiver waiting")
    behind = (replica(replay=4000, age=9.0), primary(lsn=4500))
    [lagging] = run([behind])
    assert (lagging.state, lagging.reason) == ("lagging", "lag 9.00 s (tolerance 5 s), 500 bytes (limit 1000)")
    [unlimited] = run([behind], dataclasses.replace(CONFIG, max_lag_bytes=None))
    assert unlimited.reason == "lag 9.00 s (tolerance 5 s), 500 bytes"


def test_rejoin__after_exactly_rejoin_after_checks_good_probes_the_count_in_the_reason() -> None:
    good = (replica(replay=5100), primary(lsn=5100))
    bad = (replica(replay=5000, receive=5050, wal_receiver_status=None), primary(lsn=5100))
    out = run([good, bad, good, good])
    assert [h.state for h in out] == ["ok", "not_streaming", "rejoining", "ok"]
    assert out[2].reason == "1/2 good probes"
    assert [h.good_streak for h in out] == [1, 0, 1, 2]
    assert [h.ever_left for h in out] == [False, True, True, False]
    assert [h.available for h in out] == [True, False, False, True]
    once = dataclasses.replace(CONFIG, rejoin_after_checks=1)
    assert [h.state for h in run([good, bad, good], once)] == ["ok", "not_streaming", "ok"]


def test_availability__a_replica_at_the_primarys_position_is_linked_whatever_its_receiver_says() -> None:
    [health] = run([(replica(replay=5100, receive=5150, wal_receiver_status=None), primary(lsn=5100))])
    assert (health.state, health.lag_seconds) == ("ok", 0.0)


def test_availability__the_outage_tolerance_only_while_the_primary_is_away() -> None:
    outage = dataclasses.replace(CONFIG, primary_outage_max_staleness_seconds=300.0)
    [up] = run([(replica(replay=4000, age=60.0), primary(lsn=4500))], outage)
    assert up.state == "lagging"  # the primary answers: the usual 5 s
    answered = (replica(replay=4000, receive=4000, age=60.0), primary(lsn=4500))  # a standby of this primary
    [_, away] = run([answered, (replica(replay=4000, receive=4000, age=60.0), primary(ok=False))], outage)
    assert away.state == "ok"  # degraded mode: up to 300 s


def health_of(alias: str, lag: float, lag_bytes: int = 0) -> ReplicaHealth:
    return ReplicaHealth(alias, state="ok", available=True, lag_seconds=lag, window_lag_seconds=lag,
                         lag_bytes=lag_bytes, window_lag_bytes=lag_bytes, measured_at=time.monotonic())  # fmt: skip


def test_snapshot_usable__the_tolerance_the_byte_limit_and_degraded_modes_freshest() -> None:
    pair = dataclasses.replace(CONFIG, replicas=("r", "s"), primary_outage_max_staleness_seconds=300.0)
    up = primary()
    snapshot = Snapshot({"r": health_of("r", 4.0), "s": health_of("s", 8.0)}, up, up)
    assert (snapshot.primary, snapshot.last_good) == (up, up)
    assert list(snapshot.usable(pair)) == ["r"]  # the primary answers: 5 s, not the outage's 300
    assert list(snapshot.usable(pair, 100.0)) == ["r", "s"]  # a block's own tolerance
    heavy = Snapshot({"r": health_of("r", 0.0, lag_bytes=1001), "s": health_of("s", 0.0, lag_bytes=1000)}, up, up)
    assert list(heavy.usable(pair)) == ["s"]  # the byte limit, 1000
    away = primary(ok=False)
    outage = Snapshot({"r": health_of("r", 10.0), "s": health_of("s", 15.0)}, away, up)
    assert list(outage.usable(pair)) == ["r", "s"]  # within 5 s of the freshest
    outage = Snapshot({"r": health_of("r", 10.0), "s": health_of("s", 15.5)}, away, up)
    assert list(outage.usable(pair)) == ["r"]  # the freshest only
    caught_up = Snapshot({"r": health_of("r", 0.0), "s": health_of("s", 5.5)}, away, up)
    assert list(caught_up.usable(pair)) == ["r"]


def test_lag__the_replay_age_itself_when_nothing_tighter_is_known() -> None:
    [young] = run([(replica(replay=3000, age=0.5), primary(lsn=3500))])
    assert young.lag_seconds == 0.5
    answered = (replica(replay=3000, age=2.0), primary(lsn=3500))  # a standby of this primary
    [_, cut_off] = run([answered, (replica(replay=3000, age=2.0, clock=1000.0), primary(ok=False))])  # no primary clock
    assert cut_off.lag_seconds == 2.0
    carried = assess(dataclasses.replace(ReplicaHealth("r"), marked_down_at=42.0), *run_args(), CONFIG, None)
    assert carried.marked_down_at == 42.0  # a request's mark-down is remembered by the next measure


def run_args() -> tuple[ReplicaProbe, PrimaryProbe]:
    return replica(replay=3000), primary(lsn=3000)


def test_marked_down__down_at_once_keeping_what_the_next_probe_needs() -> None:
    [known] = run([(replica(replay=1000), primary(lsn=1000))])
    known = dataclasses.replace(known, skew=0.5)
    before = time.monotonic()
    down = marked_down(known, "connection refused")
    assert (down.alias, down.state, down.reason, down.available, down.ever_left) == (
        "r", "down", "connection refused", False, True)  # fmt: skip
    assert (down.replay_lsn, down.skew, down.good_streak) == (1000, 0.5, 0)
    assert before <= down.marked_down_at <= time.monotonic()


def test_usable__edges_of_the_byte_limit_and_of_an_unknown_or_caught_up_lag() -> None:
    now = time.monotonic()
    at_zero = dataclasses.replace(health_of("r", 0.0, lag_bytes=0))
    assert at_zero.usable(5.0, 0, math.inf, now) is True  # 0 bytes behind a limit of 0
    assert ReplicaHealth("r").staleness(now) == math.inf  # never measured: no bound
    caught_up = dataclasses.replace(health_of("r", 0.0), window_lag_seconds=3.0, measured_at=now)
    assert caught_up.usable_until(5.0, math.inf) == math.inf  # caught up at its probe: age adds nothing
    assert caught_up.staleness(now + 100) == 3.0


def test_lag__no_replay_position_yet_and_no_bound_at_all() -> None:
    [unreplayed] = run([(replica(replay=None, receive=None, age=None), primary(lsn=10))])  # type: ignore[arg-type]
    assert unreplayed.lag_bytes == 10
    assert unreplayed.lag_seconds == math.inf  # no replayed commit, never seen caught up
    assert unreplayed.state == "lagging"


def test_availability__no_receive_position_known_counts_as_replayed_all() -> None:
    probe = ReplicaProbe("r", ok=True, duration=0.001, started=time.monotonic(), in_recovery=True, receive_lsn=None,
                         replay_lsn=5000, replay_age_seconds=1.0, wal_receiver_status=None,
                         system_identifier=1)  # fmt: skip
    health = assess(ReplicaHealth("r"), probe, primary(lsn=5100), CONFIG, None)
    assert (health.state, health.lag_seconds) == ("ok", 1.0)


def test_not_a_standby__another_clusters_replica_says_so() -> None:
    [foreign] = run([(replica(replay=1000, system_identifier=2), dataclasses.replace(primary(), system_identifier=1))])
    assert (foreign.state, foreign.reason) == (
        "foreign", "not a standby of this primary (another cluster's system identifier)")  # fmt: skip


def test_snapshot_usable__degraded_mode_keeps_a_caught_up_replica_under_a_tight_tolerance() -> None:
    tight = dataclasses.replace(CONFIG, replicas=("r",), max_staleness_seconds=0.5,
                                primary_outage_max_staleness_seconds=300.0)  # fmt: skip
    up = primary()
    assert list(Snapshot({"r": health_of("r", 0.0)}, primary(ok=False), up).usable(tight)) == ["r"]


def test_within_ceiling__up_and_within_the_hard_ceiling_whatever_the_bytes() -> None:
    now = time.monotonic()
    config = dataclasses.replace(CONFIG, max_staleness_hard_seconds=60.0)
    assert health_of("r", 30.0, lag_bytes=10**9).within_ceiling(config, now) is True  # MAX_LAG_BYTES aside
    assert health_of("r", 60.0).within_ceiling(config, now) is True
    assert health_of("r", 60.5).within_ceiling(config, now) is False
    assert dataclasses.replace(health_of("r", 1.0), available=False).within_ceiling(config, now) is False
    stalled = dataclasses.replace(health_of("r", 0.0), measured_at=now - config.stall_limit - 1)
    assert stalled.within_ceiling(config, now) is False  # a stalled prober's snapshot is not trusted


def test_snapshot__keeps_the_lag_history_it_is_given() -> None:
    lags = {"r": ()}
    assert Snapshot(history=lags).history == lags
    assert Snapshot().history == {}
