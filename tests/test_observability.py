"""Prometheus metrics (by deltas), /metrics access, the admin status page, the Gist admin
through the router, and metrics summed over gunicorn workers."""

from __future__ import annotations

import math
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.test import Client, override_settings
from pgcluster import Cluster
from prometheus_client import REGISTRY

from dbrouting import replica_health, routing_scope
from dbrouting.health import cache
from gists.models import Gist

from .chaos_harness import database_url, gunicorn
from .conftest import wait_for_replicas, wait_until
from .factories import make_gist
from .test_failover import terminate_app_sessions

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("warm_health")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- metrics --------------------------------------------------------------------------------


def test_reads_total__counts_each_read_by_alias_and_reason() -> None:
    gist = make_gist()
    before = {a: sample("dbrouting_reads_total", alias=a, reason="replica") for a in ("replica1", "replica2")}
    forced = sample("dbrouting_reads_total", alias="default", reason="forced")
    from dbrouting import use_primary

    with routing_scope():  # a scope's reads are counted when it ends
        for _ in range(6):
            Gist.objects.filter(pk=gist.pk).exists()
        with use_primary():
            Gist.objects.filter(pk=gist.pk).exists()
        assert sample("dbrouting_reads_total", alias="default", reason="forced") == forced
    after = {a: sample("dbrouting_reads_total", alias=a, reason="replica") for a in ("replica1", "replica2")}
    assert sum(after.values()) - sum(before.values()) == 6
    assert sample("dbrouting_reads_total", alias="default", reason="forced") - forced == 1


def test_gauges_and_probe_metrics__move_with_the_health_cache() -> None:
    probes = sample("dbrouting_probe_duration_seconds_count", alias="replica1")
    assert cache.wait_for_rounds(2)
    assert sample("dbrouting_probe_duration_seconds_count", alias="replica1") - probes >= 2
    assert sample("dbrouting_replica_usable", alias="replica1") == 1.0
    wait_until(  # the gauge is the snapshot's figure (a round may publish between the two reads)
        lambda: (
            REGISTRY.get_sample_value("dbrouting_replica_lag_bytes", {"alias": "replica2"})
            == replica_health()["replica2"].lag_bytes
        ),
        what="lag bytes gauge equal to the health cache's",
    )
    assert sample("dbrouting_replica_lag_seconds", alias="replica2") == 0.0


def test_lag_gauges__of_a_replica_that_cannot_be_measured_are_infinite_not_its_last_value() -> None:
    from dbrouting.assessment import DOWN, ReplicaHealth, Snapshot
    from dbrouting.conf import get_config
    from dbrouting.metrics import observe_snapshot

    caught_up = ReplicaHealth("gauge-test", lag_seconds=0.0, lag_bytes=0)
    observe_snapshot(Snapshot({"gauge-test": caught_up}), get_config())
    assert sample("dbrouting_replica_lag_seconds", alias="gauge-test") == 0.0
    down = ReplicaHealth("gauge-test", state=DOWN, reason="refused")
    observe_snapshot(Snapshot({"gauge-test": down}), get_config())
    for name in ("dbrouting_replica_lag_seconds", "dbrouting_replica_lag_bytes"):
        assert REGISTRY.get_sample_value(name, {"alias": "gauge-test"}) == math.inf, name
    assert sample("dbrouting_replica_usable", alias="gauge-test") == 0.0


def test_fallbacks_total__counts_a_failover(cluster: Cluster) -> None:
    make_gist()
    Gist.objects.using("replica1").exists()
    before = sample("dbrouting_fallbacks_total", alias="replica1", cause="broken")
    terminate_app_sessions(cluster, "replica1")
    assert Gist.objects.using("replica1").exists()
    assert sample("dbrouting_fallbacks_total", alias="replica1", cause="broken") - before == 1
    assert sample("dbrouting_replica_usable", alias="replica1") == 0.0
    wait_until(lambda: sample("dbrouting_replica_usable", alias="replica1") == 1.0, what="replica1 usable again")


def test_django_prometheus__counts_queries_per_alias() -> None:
    make_gist()
    for _ in range(2):  # open both replica connections first: opening runs set-up queries
        with routing_scope():
            Gist.objects.exists()
    name = "django_db_execute_total"
    before = {a: sample(name, alias=a, vendor="postgresql") for a in ("default", "replica1", "replica2")}
    for _ in range(4):
        with routing_scope():  # a scope per read, as requests: round-robin across scopes
            Gist.objects.exists()
    after = {a: sample(name, alias=a, vendor="postgresql") for a in before}
    assert after["replica1"] - before["replica1"] == 2
    assert after["replica2"] - before["replica2"] == 2


def test_metrics_endpoint__open_to_allowed_networks_only(client: Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"dbrouting_reads_total" in response.content
    config = {**settings.DBROUTING, "METRICS_ALLOWED_NETWORKS": ["10.0.0.0/8"]}
    with override_settings(DBROUTING=config):
        assert client.get("/metrics").status_code == 404  # nobody else learns it is there
        assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
        with override_settings(DEBUG=True):
            assert client.get("/metrics").status_code == 200


def test_metrics_endpoint__a_bearer_token_opens_it_from_anywhere_and_nothing_else_does(client: Client) -> None:
    token = "t" * 40
    config = {**settings.DBROUTING, "METRICS_ALLOWED_NETWORKS": [], "METRICS_TOKEN": token}
    with override_settings(DBROUTING=config):
        assert client.get("/metrics").status_code == 404  # default deny: no network is allowed
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}x").status_code == 404
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {token}").status_code == 404
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR="192.0.2.1").status_code == 200


def test_metrics_endpoint__an_allowed_network_does_not_count_through_a_proxy(client: Client) -> None:
    config = {**settings.DBROUTING, "METRICS_ALLOWED_NETWORKS": ["10.0.0.0/8"]}
    with override_settings(DBROUTING=config):
        assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 200  # Prometheus, directly
        # The load balancer, inside the VPC's network, forwarding a client's request.
        assert client.get("/metrics", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 404
        assert client.get("/metrics", REMOTE_ADDR="10.0.0.9", HTTP_FORWARDED="for=198.51.100.7").status_code == 404
        # A load balancer that drops X-Forwarded-For still says it is one.
        assert client.get("/metrics", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_PROTO="https").status_code == 404


# -- admin ----------------------------------------------------------------------------------


@pytest.fixture
def staff() -> Client:
    staff = User.objects.db_manager("default").create_user("staff", "s@example.com", "pw-for-tests-only", is_staff=True)
    staff.user_permissions.add(Permission.objects.db_manager("default").get(codename="view_replicastatus"))
    User.objects.db_manager("default").create_user("clerk", "c@example.com", "pw-for-tests-only", is_staff=True)
    User.objects.db_manager("default").create_user("user", "u@example.com", "pw-for-tests-only")
    User.objects.db_manager("default").create_superuser("root", "r@example.com", "pw-for-tests-only")
    wait_for_replicas()
    client = Client()
    assert client.login(username="staff", password="pw-for-tests-only")
    wait_for_replicas()
    return client


def test_admin_status_page__for_staff_linked_from_the_index(staff: Client) -> None:
    index = staff.get("/admin/")
    assert b"/admin/dbrouting/replicastatus/" in index.content
    page = staff.get("/admin/dbrouting/replicastatus/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'http-equiv="refresh"' in html
    assert "<td>replica1</td>" in html
    assert f"<td>127.0.0.1:{connections['replica1'].settings_dict['PORT']}</td>" in html
    assert "healthy" in html
    assert connections["replica1"].settings_dict["PASSWORD"] not in html
    assert '<strong id="all-behind-policy">primary</strong>' in html  # the policy in force
    assert 'id="all-behind"' not in html  # not applying now: the replicas are within the tolerance
    assert "/admin/dbrouting/policyoverride/" not in html  # a staff member without the permission
    assert staff.get("/admin/dbrouting/policyoverride/add/").status_code == 403


def test_admin_policy_override__a_superuser_sets_it_and_the_probers_follow(staff: Client) -> None:
    from dbrouting.conf import get_config
    from dbrouting.health import cache
    from dbrouting.models import PolicyOverride

    root = Client()
    assert root.login(username="root", password="pw-for-tests-only")
    assert "/admin/dbrouting/policyoverride/" in root.get("/admin/dbrouting/replicastatus/").content.decode()
    try:
        response = root.post("/admin/dbrouting/policyoverride/add/", {"policy": "least_lagged", "reason": "backfill"})
        assert response.status_code == 302, response.content.decode()[:500]
        assert PolicyOverride.objects.using("default").get().set_by == "root"
        past = {"policy": "primary", "expires_at_0": "2000-01-01", "expires_at_1": "00:00:00"}
        refused = root.post("/admin/dbrouting/policyoverride/add/", past)
        assert refused.status_code == 200
        assert "This time has passed" in refused.content.decode()
        again = root.post("/admin/dbrouting/policyoverride/add/", {"policy": "least_lagged", "reason": "again"})
        assert again.status_code == 302
        assert [o.reason for o in PolicyOverride.objects.using("default").all()] == ["again"]  # one at a time
        wait_until(lambda: cache.snapshot().policy(get_config()) == "least_lagged", what="the override probed")
        page = root.get("/admin/dbrouting/replicastatus/").content.decode()
        assert '<strong id="all-behind-policy">least_lagged</strong>' in page
    finally:
        PolicyOverride.objects.using("default").all().delete()
    wait_until(lambda: cache.snapshot().policy(get_config()) == "primary", what="the override gone")


def test_admin_status_page__reloading_opens_no_connection(staff: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(4):  # Django's persistent connections to each node, as a running site has them
        assert staff.get("/admin/dbrouting/replicastatus/").status_code == 200
    opened: list[object] = []
    real = psycopg.connect
    monkeypatch.setattr(psycopg, "connect", lambda *a, **k: opened.append(k.get("port")) or real(*a, **k))
    for _ in range(3):
        page = staff.get("/admin/dbrouting/replicastatus/")
        assert '<table id="replication">' in page.content.decode()
        assert "streaming" in page.content.decode()  # pg_stat_replication, read on Django's connection
    assert opened == []


def test_admin_status_page__refused_to_others(staff: Client) -> None:
    assert Client().get("/admin/dbrouting/replicastatus/").status_code == 302
    user = Client()
    assert user.login(username="user", password="pw-for-tests-only")
    wait_for_replicas()
    response = user.get("/admin/dbrouting/replicastatus/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert staff.post("/admin/dbrouting/replicastatus/add/").status_code in (403, 404)
    clerk = Client()  # staff without the "view replica status" permission
    assert clerk.login(username="clerk", password="pw-for-tests-only")
    wait_for_replicas()
    assert clerk.get("/admin/dbrouting/replicastatus/").status_code == 403
    assert b"/admin/dbrouting/replicastatus/" not in clerk.get("/admin/").content


def test_gist_admin__add_and_change_round_trip_through_the_router(staff: Client) -> None:
    root = Client()
    assert root.login(username="root", password="pw-for-tests-only")
    wait_for_replicas()
    form = {"title": "From admin", "content": "c", "latitude": "10", "longitude": "20", "_save": "Save"}
    added = root.post("/admin/gists/gist/add/", form)
    assert added.status_code == 302, added.content[:500]
    gist = Gist.objects.using("default").get(title="From admin")
    listing = root.get(added["Location"])  # the page after the save shows the saved data
    assert b"From admin" in listing.content
    changed = root.post(f"/admin/gists/gist/{gist.pk}/change/", {**form, "title": "Renamed"})
    assert changed.status_code == 302
    assert b"Renamed" in root.get(changed["Location"]).content
    wait_for_replicas()
    assert cache.wait_for_rounds(2)
    later = root.get("/admin/gists/gist/")
    assert later["X-DB-Served-By"].startswith("replica")  # the changelist reads a replica
    assert b"Renamed" in later.content


# -- gunicorn, several workers ---------------------------------------------------------------


@pytest.fixture
def app_server(tmp_path: Path) -> Iterator[str]:
    db = connections["default"].settings_dict
    replicas = [connections[a].settings_dict for a in ("replica1", "replica2")]
    env = {
        "DATABASE_URL": database_url(db),
        "DATABASE_REPLICA_URLS": ",".join(database_url(r) for r in replicas),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    with gunicorn(env, workers=2) as base:
        yield base


def test_gunicorn_workers__metrics_sum_every_worker(app_server: str, tmp_path: Path) -> None:
    make_gist()
    for _ in range(40):
        with urllib.request.urlopen(f"{app_server}/api/gists/", timeout=10) as response:
            assert response.status == 200
    pids = {re.sub(r"\D", "", p.name.split("_")[-1]) for p in (tmp_path / "prom").glob("counter_*.db")}

    def reads() -> float:
        # Each worker folds its reads into the shared counter once per probe round.
        text = urllib.request.urlopen(f"{app_server}/metrics", timeout=10).read().decode()
        pattern = r"^dbrouting_reads_total\{([^}]*)\} ([0-9.e+]+)$"
        return sum(float(value) for _, value in re.findall(pattern, text, re.MULTILINE))

    wait_until(lambda: reads() >= 40, timeout=10, what="every worker's reads in /metrics")
    assert len(pids) == 2, pids
