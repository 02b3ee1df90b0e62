"""`manage.py replica_status`: table, JSON and exit codes in each real cluster state."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from pgcluster import Cluster
from prometheus_client import REGISTRY

from .conftest import usable, wait_for_replicas, wait_until
from .routing_helpers import pause_replay, served_by_each

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("live_db")


def status(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", **(env or {})}
    return subprocess.run(
        [sys.executable, "manage.py", "replica_status", *args],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def nodes(proc: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {n["alias"]: n for n in json.loads(proc.stdout)["nodes"]}


def test_healthy__table_and_exit_code_0() -> None:
    proc = status()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = lines[1].split()
    assert header == ["alias", "address", "role", "reachable", "receiving", "replay_lsn", "lag_bytes", "lag_s",
                      "usable", "why"]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    primary = connections["default"].settings_dict
    assert rows["default"][1:4] == [f"{primary['HOST']}:{primary['PORT']}", "primary", "yes"]
    for alias in ("replica1", "replica2"):
        assert rows[alias][2:5] == ["replica", "yes", "yes"]
        assert rows[alias][8] == "yes"
    assert "primary's pg_stat_replication: 2 standby(s)" in proc.stdout
    assert "replica1 from 127.0.0.1: streaming" in proc.stdout
    assert proc.stderr == ""
    assert "password" not in proc.stdout.lower()


def test_healthy__json_schema() -> None:
    proc = status("--json")
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    assert report["schema"] == 3
    assert report["exit_code"] == 0
    assert report["errors"] == []
    assert set(report) == {"schema", "checked_at", "max_staleness_seconds", "nodes", "replication", "errors",
                           "exit_code", "all_behind_policy", "all_behind", "all_behind_override"}  # fmt: skip
    assert (report["all_behind_policy"], report["all_behind"], report["all_behind_override"]) == (
        "primary",
        False,
        False,
    )
    node = nodes(proc)["replica1"]
    assert set(node) == {"alias", "address", "role", "reachable", "receiving", "replay_lsn", "lag_bytes",
                         "lag_seconds", "usable", "state", "why"}  # fmt: skip
    assert node["role"] == "replica"
    assert node["usable"] is True
    assert [r["application_name"] for r in report["replication"]] == ["replica1", "replica2"]


def test_paused_past_the_tolerance__exit_code_1_and_one_stderr_line(replay_control: Cluster) -> None:
    replay_control.psql(replay_control.node("replica1"), "SELECT pg_wal_replay_pause()")
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE advance_wal AS SELECT 1 AS v")  # WAL the paused replica lacks
    env = {"DBROUTING_MAX_STALENESS_SECONDS": "1"}
    deadline = time.monotonic() + 30
    proc = status("--json", env=env)
    while proc.returncode != 1 and time.monotonic() < deadline:
        with connections["default"].cursor() as cursor:
            cursor.execute("INSERT INTO advance_wal VALUES (1)")
        proc = status("--json", env=env)
    assert proc.returncode == 1, proc.stdout
    report = nodes(proc)
    assert report["replica1"]["state"] == "lagging"
    assert report["replica1"]["usable"] is False
    assert report["replica2"]["usable"] is True
    assert proc.stderr.strip().splitlines() == [line for line in proc.stderr.strip().splitlines() if "replica1" in line]
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.cluster
def test_replica_stopped__exit_code_1(cluster: Cluster) -> None:
    cluster.stop("replica2", mode="immediate")
    try:
        proc = status()
        assert proc.returncode == 1
        row = next(line.split() for line in proc.stdout.splitlines() if line.startswith("replica2"))
        assert row[2:4] == ["unknown", "no"]
        assert proc.stderr.startswith("replica_status: replica2 at 127.0.0.1:")
        assert "down" in proc.stderr
    finally:
        cluster.start("replica2")
    wait_for_replicas(["replica2"])
    wait_until(lambda: usable("replica2"), what="replica2 usable again")


@pytest.mark.cluster
def test_primary_stopped__exit_code_2(cluster: Cluster) -> None:
    for alias in connections:
        connections[alias].close()
    cluster.stop("primary", mode="fast")
    try:
        proc = status("--json")
        assert proc.returncode == 2
        assert nodes(proc)["default"]["reachable"] is False
        assert any(line.startswith("replica_status: default (primary)") for line in proc.stderr.splitlines())
    finally:
        cluster.start("primary")
    wait_for_replicas()
    wait_until(lambda: usable("replica1") and usable("replica2"), what="replicas streaming again")


def test_bad_configuration__exit_code_2_in_one_line() -> None:
    proc = status(env={"DBROUTING_MAX_STALENESS_SECONDS": "nan"})
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("replica_status: configuration: DBROUTING['MAX_STALENESS_SECONDS']")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_watch__refreshes_until_interrupted() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    proc = subprocess.Popen(  # (stderr not piped: a full pipe nobody reads would block it)
        [sys.executable, "manage.py", "replica_status", "--watch", "0.2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        seen = 0
        for line in proc.stdout:
            if line.replace("\x1b[2J\x1b[H", "").startswith("checked at"):
                seen += 1
            if seen == 3:
                break
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert seen == 3
    finally:
        if proc.poll() is None:  # never left running to skew the tests after this one
            proc.kill()
            proc.wait(timeout=10)


# -- one verdict: the router, the gauge and the command agree ---------------------------------


def in_process_status() -> dict[str, dict]:
    """``replica_status --json`` in this process: the same health cache as the router's."""
    out = io.StringIO()
    with contextlib.suppress(SystemExit):
        call_command("replica_status", "--json", stdout=out, stderr=io.StringIO())
    return {n["alias"]: n for n in json.loads(out.getvalue())["nodes"]}


def verdicts() -> dict[str, tuple[str, bool, bool, bool]]:
    """Per replica: (state, usable by the command, usable by the gauge, served by the router)."""
    nodes = in_process_status()
    routed = set(served_by_each(8))
    gauge = {a: REGISTRY.get_sample_value("dbrouting_replica_usable", {"alias": a}) == 1.0 for a in nodes}
    return {a: (nodes[a]["state"], nodes[a]["usable"], gauge[a], a in routed) for a in ("replica1", "replica2")}


def agree(state: str, alias: str = "replica1") -> bool:
    """``alias`` is in ``state`` and the command, the gauge and the router give one verdict (the
    asserts after each wait check that verdict in a state that lasts)."""
    found = verdicts()[alias]
    return found[0] == state and found[1] == found[2] == found[3]


AGREE = {
    "CHECK_INTERVAL_SECONDS": 0.2,
    "MAX_STALENESS_SECONDS": 1.0,
    "REJOIN_AFTER_CHECKS": 25,
    "SERVED_BY_HEADER": True,
}


@pytest.mark.cluster
@override_settings(DBROUTING=AGREE)
def test_router_gauge_and_command__agree_in_every_state(replay_control: Cluster) -> None:
    from .factories import make_gist

    make_gist()
    wait_until(lambda: agree("ok") and agree("ok", "replica2"), what="both ok, all agreeing")
    assert verdicts()["replica1"] == ("ok", True, True, True)
    pause_replay(replay_control, "replica1")
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE agree_wal AS SELECT 1 AS v")  # WAL the paused replica lacks
    wait_until(lambda: agree("lagging"), timeout=30, what="replica1 lagging, all agreeing")
    assert verdicts()["replica1"] == ("lagging", False, False, False)
    replay_control.psql(replay_control.node("replica1"), "SELECT pg_wal_replay_resume()")
    replay_control.stop("replica1", mode="immediate")
    try:
        wait_until(lambda: agree("down"), timeout=30, what="replica1 down, all agreeing")
        assert verdicts()["replica1"] == ("down", False, False, False)
    finally:
        replay_control.start("replica1")
    wait_until(lambda: agree("rejoining"), timeout=30, what="replica1 rejoining, all agreeing")
    assert verdicts()["replica1"] == ("rejoining", False, False, False)
    assert verdicts()["replica2"] == ("ok", True, True, True)
    wait_until(lambda: agree("ok"), timeout=30, what="replica1 back, all agreeing")


def test_misconfiguration_found_by_the_checks__exit_code_2() -> None:
    out, err = io.StringIO(), io.StringIO()
    with override_settings(DATABASE_ROUTERS=[]), pytest.raises(SystemExit) as exit_info:
        call_command("replica_status", stdout=out, stderr=err)
    assert exit_info.value.code == 2
    assert err.getvalue().startswith("replica_status: configuration: dbrouting.E001: ")


@override_settings(DBROUTING={"CHECK_INTERVAL_SECONDS": 0.2, "PROBE_TIMEOUT_SECONDS": 0.1})
def test_no_probe_round_completes__exit_code_2_with_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    from dbrouting.health import cache

    def broken() -> None:
        raise ValueError("the probe round broke")

    monkeypatch.setattr(cache, "refresh", broken)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("replica_status", "--json", stdout=out, stderr=err)
    assert exit_info.value.code == 2
    assert "health cache: no probe round completed within" in err.getvalue()
    assert err.getvalue().rstrip().endswith(": the probe round broke")
