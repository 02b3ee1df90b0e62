"""Hostile configuration, secrets kept out of every output, and writes that must fail loudly."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import InternalError, connections, transaction
from django.test import Client, override_settings
from pgcluster import DEFAULT_DATA_DIR, Cluster

from dbrouting import replica_health
from dbrouting.health import cache
from gists.models import Gist

from .conftest import wait_until
from .factories import make_gist
from .routing_helpers import served_by
from .test_failover import terminate_app_sessions

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "gists-dev-password"  # the local cluster's, which must never be printed
pytestmark = pytest.mark.usefixtures("warm_health")


@pytest.fixture
def extra_alias() -> Iterator[object]:
    """Add a database alias for one test (Django has no public way to add one at run time)."""
    added: list[str] = []

    def add(alias: str, **changes: object) -> None:
        base = {**connections.settings["replica2"], **changes}
        connections.settings[alias] = base
        added.append(alias)

    yield add
    for alias in added:
        connections[alias].close()
        del connections.settings[alias]
    cache.reset()


@pytest.fixture(scope="module")
def stranger() -> Iterator[Cluster]:
    """Another cluster altogether: its nodes are standbys of some other primary."""
    port = int(os.environ.get("PGCLUSTER_TEST_PORT_BASE", "25532")) + 10
    other = Cluster(base_dir=DEFAULT_DATA_DIR / "stranger", port_base=port, replica_count=1)
    other.destroy(log=False)
    other.up(log=False)
    yield other
    other.destroy(log=False)


def test_replica_of_another_cluster__is_refused_and_logged(
    stranger: Cluster, extra_alias: object, caplog: pytest.LogCaptureFixture
) -> None:
    make_gist()
    extra_alias("stranger", PORT=stranger.replicas[0].port, NAME="gists")  # type: ignore[operator]
    caplog.set_level(logging.ERROR, logger="dbrouting")
    with override_settings(DBROUTING={"REPLICAS": ["replica1", "replica2", "stranger"]}):
        cache.reset()
        wait_until(lambda: replica_health().get("stranger") is not None and replica_health()["stranger"].checked_at)
        assert cache.wait_for_rounds(2)
        assert replica_health()["stranger"].state == "foreign"
        assert "stranger" not in {served_by() for _ in range(9)}
    assert any("stranger is foreign (not a standby of this primary" in r.getMessage() for r in caplog.records)


def test_replica_unreachable__reads_go_elsewhere_and_it_is_logged_once(
    extra_alias: object, caplog: pytest.LogCaptureFixture
) -> None:
    make_gist()
    extra_alias("unreachable", PORT=9)  # type: ignore[operator]
    caplog.set_level(logging.WARNING, logger="dbrouting")
    with override_settings(DBROUTING={"REPLICAS": ["unreachable", "replica2"]}):
        cache.reset()
        assert cache.wait_for_rounds(4)
        assert replica_health()["unreachable"].state == "down"
        assert {served_by() for _ in range(6)} == {"replica2"}
        response = Client().get(f"/api/gists/{Gist.objects.using('default').first().gist_id}/")
        assert response.status_code == 200
    down = [r for r in caplog.records if "unreachable is down" in r.getMessage()]
    assert len(down) == 1
    assert "Connection refused" in down[0].getMessage()


def test_app_starts_with_a_replica_unreachable() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local",
           "DATABASE_REPLICA_URLS": "postgres://gists:whatever@127.0.0.1:9/gists"}  # fmt: skip
    proc = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_write_routed_to_a_replica_by_mistake__fails_loudly() -> None:
    with pytest.raises(InternalError, match="read-only"):
        Gist.objects.using("replica1").create(title="t", content="c", latitude=0, longitude=0)
    with pytest.raises(InternalError, match="read-only"), transaction.atomic(using="replica2"):
        Gist.objects.using("replica2").filter(title="x").update(title="y")


def test_secrets__never_in_status_output_logs_error_pages_or_metrics(
    client: Client, caplog: pytest.LogCaptureFixture, cluster: Cluster
) -> None:
    caplog.set_level(logging.DEBUG)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    outputs = []
    for args in (["replica_status"], ["replica_status", "--json"], ["check"]):
        proc = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
        outputs += [proc.stdout, proc.stderr]
    bad = {**env, "DATABASE_REPLICA_URLS": f"postgres://gists:{PASSWORD}@127.0.0.1:notaport/gists"}
    proc = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=bad, capture_output=True, text=True)
    outputs += [proc.stdout, proc.stderr]
    # A failover logs the reason; a 404 and a bad request render pages; /metrics lists labels.
    make_gist()
    Gist.objects.using("replica1").exists()
    terminate_app_sessions(cluster, "replica1")
    Gist.objects.using("replica1").exists()
    for path in ("/api/gists/nope/", "/gists/nope/", "/api/gists/nearby/?lat=x", "/metrics"):
        outputs.append(client.get(path).content.decode())
    outputs += [r.getMessage() for r in caplog.records]
    assert len(outputs) > 10
    leaks = [text[:200] for text in outputs if PASSWORD in text]
    assert leaks == []
