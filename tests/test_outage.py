"""Degraded mode: the primary is away (killed, or hung), the replicas keep serving reads, writes
fail fast and clearly, and everything says so; then the primary returns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import DatabaseError, close_old_connections, connections
from django.test import Client, override_settings
from pgcluster import Cluster
from prometheus_client import REGISTRY

from dbrouting import primary_available, replica_health

from .conftest import usable, wait_for_replicas, wait_until
from .factories import make_gist
from .routing_helpers import served_by_each
from .test_replica_status import ROOT

OUTAGE = {
    "CHECK_INTERVAL_SECONDS": 0.2, "MAX_STALENESS_SECONDS": 1.0, "PRIMARY_OUTAGE_MAX_STALENESS_SECONDS": 60,
    "SERVED_BY_HEADER": True,
}  # fmt: skip
BODY = json.dumps({"title": "during the outage", "content": "c", "latitude": 1.0, "longitude": 2.0})
pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("warm_health")]


def connect_timeout() -> float:
    return float(connections["default"].settings_dict["OPTIONS"].get("connect_timeout", 3))


@pytest.fixture
def outage(cluster: Cluster) -> Iterator[Cluster]:
    """The primary killed (kill -9) once the replicas have its last write; restarted afterwards."""
    make_gist(title="before the outage")
    with override_settings(DBROUTING=OUTAGE):
        wait_until(lambda: usable("replica1") and usable("replica2"), what="replicas usable")
        cluster.stop("primary", mode="immediate")
        try:
            wait_until(lambda: not primary_available(), timeout=10, what="the primary seen as down")
            yield cluster
        finally:
            cluster.start("primary")
            wait_until(primary_available, timeout=30, what="the primary back")
    wait_for_replicas()
    wait_until(lambda: usable("replica1") and usable("replica2"), what="replicas streaming again")


def test_primary_killed__reads_answer_from_replicas_past_the_tolerance_and_writes_fail_fast(
    cluster: Cluster, tmp_path: Path
) -> None:
    gist = make_gist(title="before the outage")
    client = Client()
    with override_settings(DBROUTING=OUTAGE):
        wait_until(lambda: usable("replica1") and usable("replica2"), what="replicas usable")
        cluster.stop("primary", mode="immediate")
        try:
            wait_until(lambda: not primary_available(), timeout=10, what="the primary seen as down")
            down_at = time.monotonic()
            assert REGISTRY.get_sample_value("dbrouting_primary_up") == 0.0
            wait_until(lambda: time.monotonic() - down_at > 3.0, what="three tolerances of outage")
            for _ in range(6):
                read = client.get(f"/api/gists/{gist.gist_id}/")
                assert read.status_code == 200
                assert read["X-DB-Served-By"] in ("replica1", "replica2")
                assert read["X-DB-Degraded"] == "primary unreachable; read from a replica"
            started = time.monotonic()
            write = client.post("/api/gists/", data=BODY, content_type="application/json")
            assert write.status_code == 503
            assert time.monotonic() - started < connect_timeout() + 1
            assert int(write["Retry-After"]) > 0
            assert "Read-only for the moment" in write.json()["errors"]["database"][0]
            page = client.get("/gists/new/")
            assert page.status_code == 200
            assert b"Read-only for the moment" in page.content
            assert b"<form" not in page.content
            # A process that never saw the primary (a host of its own: its own runtime folder) cannot
            # tell its replicas from another cluster's: it reads none of them, and says why.
            env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
            env["DBROUTING_RUNTIME_DIR"] = str(tmp_path)
            status = subprocess.run(
                [sys.executable, "manage.py", "replica_status", "--json"], cwd=ROOT, capture_output=True, text=True,
                timeout=60, env=env,
            )  # fmt: skip
            assert status.returncode == 2, status.stderr
            nodes = {n["alias"]: n for n in json.loads(status.stdout)["nodes"]}
            assert nodes["default"]["reachable"] is False
            assert nodes["replica1"]["usable"] is False
            assert nodes["replica1"]["why"].startswith("not verified as a standby of this primary")
        finally:
            cluster.start("primary")
        recovered = time.monotonic()  # the primary accepts connections again from here
        wait_until(primary_available, timeout=30, what="the primary back")

        def write() -> int:
            close_old_connections()  # what request_started does, which the test client leaves out
            return client.post("/api/gists/", data=BODY, content_type="application/json").status_code

        wait_until(lambda: write() == 201, timeout=30, what="writes working again")
        assert time.monotonic() - recovered < 0.2 + 1.0 + connect_timeout() + 1  # a round, a probe, a connect
        assert REGISTRY.get_sample_value("dbrouting_primary_up") == 1.0
    wait_for_replicas()


def test_primary_killed__a_promoted_replica_gets_no_reads(outage: Cluster) -> None:
    outage.promote("replica2")
    try:
        wait_until(lambda: replica_health()["replica2"].state == "promoted", what="replica2 seen as promoted")
        assert set(served_by_each(8)) == {"replica1"}
    finally:
        outage.start("primary")
        wait_until(primary_available, timeout=30, what="the primary back")
        outage.rebuild("replica2")


def test_primary_hung__writes_fail_within_the_connect_timeout(cluster: Cluster) -> None:
    make_gist(title="before the hang")
    client = Client()
    with override_settings(DBROUTING=OUTAGE):
        assert client.post("/api/gists/", data=BODY, content_type="application/json").status_code == 201
        cluster.signal("primary", signal.SIGSTOP)  # the kernel still answers TCP: nothing times out by itself
        try:
            # A write that would hang fails the test instead of hanging it: the primary wakes later.
            watchdog = threading.Timer(connect_timeout() + 5, cluster.signal, ("primary", signal.SIGCONT))
            watchdog.start()
            started = time.monotonic()
            write = client.post("/api/gists/", data=BODY, content_type="application/json")  # on its kept connection
            elapsed = time.monotonic() - started
            watchdog.cancel()
            assert write.status_code == 503
            assert elapsed < connect_timeout() + 1, elapsed
            read = Client().get("/api/gists/")
            assert read.status_code == 200
            assert read["X-DB-Served-By"] in ("replica1", "replica2")
        finally:
            cluster.signal("primary", signal.SIGCONT)
        wait_until(primary_available, timeout=30, what="the primary back")
    wait_for_replicas()


def test_a_write_whose_position_cannot_be_read__pins_the_clients_reads_until_it_can(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The primary went away between a write and the capture of its causal token: the client's
    reads must not go to a replica that may lack the write. They go to the primary (a 503 while
    it is away) until a request finds it back, which replaces the pin by a real position."""
    from dbrouting import causal
    from dbrouting.assessment import Snapshot
    from dbrouting.health import cache
    from dbrouting.probe import PrimaryProbe

    make_gist(title="before")
    client = Client()
    up = cache.latest
    monkeypatch.setattr(cache, "refresh", lambda: cache.latest)  # the prober learns nothing meanwhile
    gone = PrimaryProbe("default", ok=False, duration=0.0, started=time.monotonic(), error="refused")
    cache.latest = Snapshot(up.replicas, gone, up.last_good)  # as seen right after the write
    real_capture = causal.capture

    def unreadable(at_least: int | None = None) -> causal.CausalToken:
        raise DatabaseError("the primary went away")

    monkeypatch.setattr(causal, "capture", unreadable)  # its position cannot be read, even at once
    write = client.post("/api/gists/", data=BODY, content_type="application/json")
    assert write.status_code == 201  # (the primary is in fact up: the write went through)
    token = causal.CausalToken.decode(client.cookies["dbrouting_causal"].value.split(":")[0])
    assert token.lsn == causal.PIN_LSN
    read = client.get(f"/api/gists/{write.json()['gist_id']}/")
    assert read["X-DB-Route"] == "default (causal)"  # never a replica that may lack it
    monkeypatch.setattr(causal, "capture", real_capture)
    cache.latest = Snapshot(up.replicas, up.primary, up.last_good)  # the primary answers again
    renewed = client.get(f"/api/gists/{write.json()['gist_id']}/")
    assert renewed.status_code == 200
    fresh = causal.CausalToken.decode(renewed.cookies["dbrouting_causal"].value.split(":")[0])
    assert fresh.lsn < causal.PIN_LSN  # a real position, which the replicas reach


def test_a_write_whose_position_is_read_at_once__keeps_its_token_when_the_primary_goes_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An autocommit write has its position read on its own connection right after it: the
    primary going away before the response leaves the client a real token, not a pin."""
    from dbrouting import causal
    from dbrouting.assessment import Snapshot
    from dbrouting.health import cache
    from dbrouting.probe import PrimaryProbe

    make_gist(title="before")
    client = Client()
    monkeypatch.setattr(cache, "refresh", lambda: cache.latest)
    up = cache.latest
    read_at_once = []
    real_capture = causal.capture

    def capture(at_least: int | None = None) -> causal.CausalToken:
        token = real_capture(at_least)
        read_at_once.append(token.lsn)
        gone = PrimaryProbe("default", ok=False, duration=0.0, started=time.monotonic(), error="refused")
        cache.latest = Snapshot(up.replicas, gone, up.last_good)  # the primary goes away right after
        return token

    monkeypatch.setattr(causal, "capture", capture)
    write = client.post("/api/gists/", data=BODY, content_type="application/json")
    assert write.status_code == 201
    token = causal.CausalToken.decode(client.cookies["dbrouting_causal"].value.split(":")[0])
    assert read_at_once == [token.lsn]  # read once, right after the INSERT
    assert token.lsn < causal.PIN_LSN  # a position replicas reach: not pinned to an absent primary
