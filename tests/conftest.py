"""Fixtures for tests against the real local cluster (scripts/pgcluster.py).

The test database is created on the primary only. Replica aliases point at the same database
name, which physical replication brings to them; tests that read on a replica wait until its
replay position reaches the primary's (``wait_for_replicas``), never on a fixed sleep.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from django.core.cache import caches
from django.db import connections
from pgcluster import Cluster

from dbrouting import probe, replica_health, routing_scope
from dbrouting.health import cache

REPLICATION_TIMEOUT_S = 30.0


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> float:
    """Poll ``predicate`` until it is true; returns the seconds it took. Fails the test on timeout."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what} not met within {timeout:.0f} s")
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    cluster = Cluster.from_env()
    cluster.up(log=False)
    return cluster


def replica_aliases() -> list[str]:
    return [alias for alias in connections if alias != "default"]


def node_query(alias: str, sql: str, params: tuple[object, ...] = ()) -> object:
    """One value from a node, on a direct connection: never through the failover engine,
    which could answer for a replica from another node."""
    with psycopg.connect(autocommit=True, **probe.connection_params(alias, 2)) as conn:
        row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def wait_for_replicas(aliases: list[str] | None = None, timeout: float = REPLICATION_TIMEOUT_S) -> None:
    """Block until each replica has replayed the primary's current WAL position."""
    target = node_query("default", "SELECT pg_current_wal_lsn()::text")
    deadline = time.monotonic() + timeout
    for alias in aliases if aliases is not None else replica_aliases():
        while True:
            try:
                caught_up = node_query(alias, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
            except psycopg.Error:  # a replica restarting in a cluster test: keep waiting
                caught_up = False
            if caught_up:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"{alias} did not replay the primary's WAL position {target} within {timeout:.0f} s")
            time.sleep(0.01)


@pytest.fixture(scope="session")
def django_db_setup(cluster: Cluster, django_db_blocker: pytest.FixtureDef) -> Iterator[None]:
    """Create the test database on the primary alone and point the replicas at it."""
    with django_db_blocker.unblock():
        primary = connections["default"]
        old_name = primary.settings_dict["NAME"]
        try:
            test_name = primary.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        except BaseException:  # sys.exit() included: the next session must be able to drop it
            cache.reset()
            connections.close_all()
            raise
        for alias in replica_aliases():
            connections[alias].close()
            connections[alias].settings_dict["NAME"] = test_name
        wait_for_replicas()
    yield
    cache.reset()  # stop probing a database about to be dropped
    with django_db_blocker.unblock():
        for alias in connections:
            connections[alias].close()
        name = primary.settings_dict["NAME"]
        if cluster.pgbouncer:  # its pooled server sessions would hold the test database open
            sql = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            cluster.psql(cluster.primary, sql)
        # Sessions just closed (ours, the prober's) may take a moment to leave: DROP DATABASE refuses them.
        wait_until(lambda: sessions_on(name) == 0, timeout=15, what=f"sessions on {name} gone")
        primary.creation.destroy_test_db(old_name, verbosity=0)


def sessions_on(database: str) -> int:
    params = {**probe.connection_params("default", 2), "dbname": "postgres"}
    with psycopg.connect(autocommit=True, **params) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()
    return int(row[0]) if row else 0


TABLES = "gists_gist, auth_user, django_session, django_admin_log"


@pytest.fixture
def live_db(django_db_setup: None, django_db_blocker: pytest.FixtureDef) -> Iterator[None]:
    """Real, committed database access on every alias; tables emptied afterwards."""
    with django_db_blocker.unblock():
        yield
        for alias in connections:
            connections[alias].close()
        with connections["default"].cursor() as cur:
            cur.execute(f"TRUNCATE {TABLES} CASCADE")
        wait_for_replicas()


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """The rate limits' counters (the default cache) start from zero in each test."""
    caches["default"].clear()


@pytest.fixture(autouse=True)
def _fresh_routing_state() -> Iterator[None]:
    """Each test starts unpinned, as each request does."""
    with routing_scope():
        yield


@pytest.fixture
def warm_health(live_db: None) -> None:
    """The health cache has probed every replica, and finds them all usable (whatever an earlier
    test did to them: hysteresis may still be holding one out)."""
    assert cache.wait_for_rounds(2, timeout=30), "the health cache did not complete probe rounds"
    wait_until(lambda: all(usable(a) for a in replica_aliases()), what="every replica usable")


def usable(alias: str) -> bool:
    health = replica_health().get(alias)
    return health is not None and health.state == "ok"


@pytest.fixture
def replay_control(cluster: Cluster) -> Iterator[Cluster]:
    """Resume replay on every replica after the test, whatever happened."""
    from .routing_helpers import resume_replay

    yield cluster
    for alias in ("replica1", "replica2"):
        if cluster.is_running(cluster.node(alias)):
            resume_replay(cluster, alias)
    wait_until(lambda: usable("replica1") and usable("replica2"), what="replicas usable again")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The chaos and fuzzing figures, one name=value per line, totals last. With
    ``CHAOS_TOTALS_FILE`` set, the totals also go to that file (``make chaos`` prints it after
    pytest's own summary, so that they are the last lines)."""
    from .chaos_harness import FIGURES

    if not FIGURES:
        return
    write = terminalreporter.write_line
    write("")
    for name, figures in FIGURES.items():
        if name.startswith("fuzz"):
            continue
        write(f"{name}: " + " ".join(f"{k}={v}" for k, v in figures.items()))
    totals = []
    replica = [f for n, f in FIGURES.items() if n.startswith(("replica_", "combined"))]
    if replica:
        totals.append(f"chaos_requests={sum(f['requests'] for f in replica)}")
        totals.append(f"chaos_read_errors={sum(f['read_errors'] for f in replica)}")
        totals.append(f"chaos_lost_writes={sum(f['lost_writes'] for f in replica)}")
        totals.append(f"chaos_ryw_violations={sum(f['ryw_violations'] for f in replica)}")
        totals.append(f"chaos_p99_ms={max(f['p99_ms'] for f in replica)}")
    away = [f for f in FIGURES.values() if "primary_down_reads" in f]  # the primary killed, hung, cut off
    if away:
        totals.append(f"chaos_primary_down_read_errors={sum(f['primary_down_read_errors'] for f in away)}")
        pinned = sum(f["primary_down_pinned_read_errors"] for f in away)
        totals.append(f"chaos_primary_down_pinned_read_errors={pinned}")
        totals.append(f"chaos_primary_down_write_p99_ms={max(f['primary_down_write_p99_ms'] for f in away)}")
        totals.append(f"chaos_primary_recovery_seconds={max(f['primary_recovery_seconds'] for f in away)}")
        totals.append(f"chaos_worker_timeouts={sum(f['worker_timeouts'] for f in away)}")
        totals.append(f"chaos_primary_lost_writes={sum(f['lost_writes'] for f in away)}")
    if "fuzz" in FIGURES:
        totals.append(f"fuzz_cases={FIGURES['fuzz']['cases']}")
        totals.append(f"fuzz_5xx={FIGURES['fuzz']['5xx']}")
    for line in totals:
        write(line)
    if os.environ.get("CHAOS_TOTALS_FILE"):
        path = Path(os.environ["CHAOS_TOTALS_FILE"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in totals))


@pytest.fixture
def override_cleared() -> Iterator[None]:
    """No operator's all-behind policy override is left after the test (``replica_policy``)."""
    yield
    from dbrouting.models import PolicyOverride

    PolicyOverride.objects.using("default").all().delete()
