"""The local cluster: real streaming replicas, and the tool's idempotence and crash recovery."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pgcluster
import pytest
from django.db import connections
from pgcluster import DEFAULT_DATA_DIR, Cluster, ClusterError

from gists.models import Gist

from .conftest import node_query, replica_aliases, wait_for_replicas
from .factories import make_gist

ROOT = Path(__file__).resolve().parent.parent


def test_replicas__are_in_recovery_and_the_primary_is_not(live_db: None) -> None:
    # Direct connections: the question is about the servers, not about routing.
    assert node_query("default", "SELECT pg_is_in_recovery()") is False
    assert replica_aliases() == ["replica1", "replica2"]
    for alias in replica_aliases():
        assert node_query(alias, "SELECT pg_is_in_recovery()") is True
        assert int(str(node_query(alias, "SELECT current_setting('port')"))) == connections[alias].settings_dict["PORT"]


def test_primary__lists_two_streaming_standbys(live_db: None) -> None:
    with connections["default"].cursor() as cur:
        cur.execute("SELECT application_name, state FROM pg_stat_replication ORDER BY application_name")
        assert cur.fetchall() == [("replica1", "streaming"), ("replica2", "streaming")]


def test_replicas__serve_what_the_primary_committed(live_db: None) -> None:
    gist = make_gist(title="Replicated")
    wait_for_replicas()
    for alias in replica_aliases():
        assert Gist.objects.using(alias).get(gist_id=gist.gist_id).title == "Replicated"


def test_replicas__refuse_writes(live_db: None) -> None:
    from django.db import InternalError, transaction

    with pytest.raises(InternalError, match="read-only"), transaction.atomic(using="replica1"):
        Gist.objects.using("replica1").create(title="t", content="c", latitude=0, longitude=0)


# -- the tool itself, on a small cluster of its own ----------------------------------------


@pytest.fixture(scope="module")
def scratch() -> Iterator[Cluster]:
    port = int(os.environ.get("PGCLUSTER_TEST_PORT_BASE", "25532"))
    cluster = Cluster(base_dir=DEFAULT_DATA_DIR / "tool-test", port_base=port, replica_count=1)
    cluster.destroy(log=False)
    cluster.up(log=False)
    yield cluster
    cluster.destroy(log=False)


def streaming(cluster: Cluster) -> list[str]:
    rows = cluster.psql(cluster.primary, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")
    return rows.splitlines()


def wait_until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)


@pytest.mark.cluster
def test_tool__up_and_down_twice_are_harmless(scratch: Cluster) -> None:
    scratch.up(log=False)
    scratch.up(log=False)
    assert all(scratch.is_running(n) for n in scratch.nodes)
    scratch.down(log=False)
    scratch.down(log=False)
    assert not any(scratch.is_running(n) for n in scratch.nodes)
    scratch.up(log=False)
    wait_until(lambda: streaming(scratch) == ["replica1"])


@pytest.mark.cluster
@pytest.mark.parametrize("victim", ["replica1", "primary"])
def test_tool__recovers_after_kill_9(scratch: Cluster, victim: str) -> None:
    scratch.psql(scratch.primary, "CREATE TABLE IF NOT EXISTS survivors (v int); INSERT INTO survivors VALUES (1)")
    scratch.signal(victim, signal.SIGKILL)
    assert not scratch.is_running(scratch.node(victim))
    assert (scratch.node(victim).data_dir / "postmaster.pid").exists()  # stale, as after a crash
    scratch.up(log=False)
    assert scratch.is_running(scratch.node(victim))
    wait_until(lambda: streaming(scratch) == ["replica1"])
    assert int(scratch.psql(scratch.primary, "SELECT count(*) FROM survivors")) >= 1
    lsn = scratch.psql(scratch.primary, "SELECT pg_current_wal_lsn()")
    wait_until(lambda: scratch.psql(scratch.replicas[0], f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'") == "t")


@pytest.mark.cluster
def test_tool__stop_immediate_then_start(scratch: Cluster) -> None:
    scratch.stop("replica1", mode="immediate")
    scratch.stop("replica1", mode="immediate")
    scratch.start("replica1")
    scratch.start("replica1")
    wait_until(lambda: streaming(scratch) == ["replica1"])


@pytest.mark.cluster
def test_tool__a_cluster_moved_to_other_ports_keeps_replicating(scratch: Cluster) -> None:
    """A developer's cluster made under an earlier PGCLUSTER_PORT_BASE: the replica follows."""
    scratch.down(log=False)
    moved = Cluster(base_dir=scratch.base_dir, port_base=scratch.port_base + 2, replica_count=1)
    try:
        moved.up(log=False)
        wait_until(lambda: streaming(moved) == ["replica1"])
        assert moved.psql(moved.replicas[0], "SELECT current_setting('port')") == str(moved.replicas[0].port)
    finally:
        moved.down(log=False)
        scratch.up(log=False)
    wait_until(lambda: streaming(scratch) == ["replica1"])


@pytest.mark.cluster
def test_tool__a_held_port_is_a_clear_error_naming_the_way_out(
    scratch: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgcluster, "PORT_WAIT_SECONDS", 0.0)
    monkeypatch.setattr(pgcluster, "_ephemeral_ports", lambda: (scratch.port_base - 100, scratch.port_base + 100))
    scratch.stop("replica1")
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", scratch.replicas[0].port))
            squatter.listen()
            with pytest.raises(ClusterError) as caught:
                scratch.start("replica1")
        message = str(caught.value)
        assert f"127.0.0.1:{scratch.replicas[0].port} is in use" in message
        assert f"keeps all 2 ports below {scratch.port_base - 100}" in message
    finally:
        scratch.start("replica1")
    wait_until(lambda: streaming(scratch) == ["replica1"])


def test_tool__default_ports_lie_below_linux_default_ephemeral_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGCLUSTER_PORT_BASE", raising=False)
    monkeypatch.delenv("PGCLUSTER_REPLICAS", raising=False)
    assert Cluster.from_env().nodes[-1].port < 32768
    assert Cluster(base_dir=DEFAULT_DATA_DIR).nodes[-1].port < 32768


def test_tool__status_command_reports_nodes_and_logs(cluster: Cluster) -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/pgcluster.py", "status"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "replica2" in proc.stdout
    assert "2 standby(s)" in proc.stdout
    assert ".pgdata/logs/primary.log" in proc.stdout
    assert "password" not in proc.stdout.lower()


def test_tool__unknown_node_is_a_clear_error() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/pgcluster.py", "start", "replica9"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "pgcluster: error: unknown node 'replica9' (known: primary, replica1, replica2)"
