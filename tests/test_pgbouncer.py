"""What only a run through PgBouncer shows (``make test`` runs this module, with the routing part
of the suite, under ``PGCLUSTER_PGBOUNCER=1``: a real PgBouncer in transaction pooling in front
of each node). Skipped when the nodes are reached directly."""

from __future__ import annotations

import os

import psycopg
import pytest
from django.db import connections
from pgcluster import PGBOUNCER_PORT_OFFSET

from dbrouting import probe, replica_health
from dbrouting.conf import get_config
from dbrouting.health import cache

from .conftest import node_query, wait_for_replicas
from .factories import make_many
from .routing_helpers import ports, served_by_each

pytestmark = [
    pytest.mark.skipif(os.environ.get("PGCLUSTER_PGBOUNCER") != "1", reason="PGCLUSTER_PGBOUNCER=1 only"),
    pytest.mark.usefixtures("live_db"),
]


def test_the_nodes_are_reached_through_pgbouncer() -> None:
    """The set-up the issue was found on: a startup option (the prober's old statement timeout) is
    refused, and every alias's server listens elsewhere than the address the app connects to."""
    params = probe.connection_params("replica1", 2)
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
        psycopg.connect(**params, options="-c statement_timeout=1000").close()
    for alias, port in ports().items():
        server_port = node_query(alias, "SELECT current_setting('port')::int")
        assert server_port == port == int(connections[alias].settings_dict["PORT"]) - PGBOUNCER_PORT_OFFSET


def test_every_replica_is_probed_usable_and_serves_reads() -> None:
    make_many([(1.0, 1.0)])
    wait_for_replicas()
    assert cache.wait_for_rounds(get_config().rejoin_after_checks + 1)
    assert {alias: h.state for alias, h in replica_health().items()} == {"replica1": "ok", "replica2": "ok"}
    assert set(served_by_each(20)) == {"replica1", "replica2"}
    assert all(connections[a].settings_dict["DISABLE_SERVER_SIDE_CURSORS"] for a in connections)
