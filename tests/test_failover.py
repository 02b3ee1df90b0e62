"""The replica engine's fallback when a connection dies under a read, and write detection."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connections
from pgcluster import Cluster

from dbrouting import replica_health
from dbrouting.backends.postgresql.base import DatabaseWrapper
from gists.models import Gist

from .conftest import usable, wait_until
from .factories import make_many

pytestmark = pytest.mark.usefixtures("warm_health")


@pytest.fixture
def rows() -> int:
    make_many([(1.0, 1.0)] * 50)
    return 50


def terminate_app_sessions(cluster: Cluster, alias: str) -> None:
    """Kill this process's connection to a replica, as a crash or a network cut would."""
    cluster.psql(
        cluster.node(alias),
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'gists:{alias}'",
    )


def test_read_on_a_killed_connection__is_served_elsewhere(cluster: Cluster, rows: int) -> None:
    assert Gist.objects.using("replica1").count() == rows
    terminate_app_sessions(cluster, "replica1")
    assert Gist.objects.using("replica1").count() == rows  # no error reaches the caller
    assert replica_health()["replica1"].state == "down"  # marked down at once
    wait_until(lambda: usable("replica1"), what="replica1 readmitted")


def test_server_side_iteration__fails_over_as_a_server_side_cursor(cluster: Cluster, rows: int) -> None:
    assert Gist.objects.using("replica2").count() == rows
    terminate_app_sessions(cluster, "replica2")
    seen = sum(1 for _ in Gist.objects.using("replica2").iterator(chunk_size=10))
    assert seen == rows
    wait_until(lambda: usable("replica2"), what="replica2 readmitted")


def test_primary_on_the_failover_engine__raises_instead_of_recursing() -> None:
    # The engine falls back only for aliases in REPLICAS: a dead primary is an error, not a loop.
    dead = {**connections.settings["default"], "PORT": 9, "ENGINE": "dbrouting.backends.postgresql"}
    wrapper = DatabaseWrapper(dead, alias="default")
    with pytest.raises(OperationalError):
        wrapper.cursor()
