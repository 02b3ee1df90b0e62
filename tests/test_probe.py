"""The SQL that measures a node, and the prober's kept connections, on the real cluster."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from dbrouting import probe
from dbrouting.conf import get_config
from dbrouting.sockets import ProbeConnections

from .conftest import node_query

pytestmark = pytest.mark.usefixtures("live_db")


@pytest.fixture
def kept() -> ProbeConnections:
    connections = ProbeConnections()
    yield connections  # type: ignore[misc]
    connections.close_all()


def test_connection_params__libpq_only_with_our_timeout_and_name() -> None:
    params = probe.connection_params("replica1", 3)
    assert params["connect_timeout"] == 3
    assert params["application_name"] == "dbrouting-probe"
    assert "options" not in params  # PgBouncer refuses startup options: the timeout is SET LOCAL
    assert not {"context", "cursor_factory", "prepare_threshold"} & set(params)
    assert get_config().connect_timeout == 2  # CONNECT_TIMEOUT_SECONDS 2.0: libpq's whole seconds


def test_probe_replica__reads_its_position_and_cluster(kept: ProbeConnections) -> None:
    result = probe.probe_replica("replica1", get_config(), kept)
    assert result.ok, result.error
    assert result.in_recovery is True
    assert result.wal_receiver_status == "streaming"
    expected = node_query("replica1", "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
    assert result.replay_lsn is not None
    assert int(expected) <= result.replay_lsn  # type: ignore[call-overload]
    primary = probe.probe_primary("default", get_config(), kept)
    assert primary.ok, primary.error
    assert primary.lsn is not None
    assert primary.lsn >= result.replay_lsn
    assert result.system_identifier == primary.system_identifier is not None


def test_probe_primary__a_standby_is_not_a_primary(kept: ProbeConnections) -> None:
    result = probe.probe_primary("replica2", get_config(), kept)
    assert not result.ok
    assert result.error == "the primary is in recovery"


def test_kept_connections__one_session_per_node_between_probes(kept: ProbeConnections) -> None:
    config = get_config()
    pid = "SELECT pg_backend_pid() AS pid"
    params = probe.connection_params("replica1", 2)
    connect = lambda: psycopg.connect(autocommit=True, row_factory=dict_row, **params)  # noqa: E731
    first = kept.query("replica1", pid, connect)["pid"]
    for _ in range(3):
        assert probe.probe_replica("replica1", config, kept).ok
    assert kept.query("replica1", pid, connect)["pid"] == first


def test_kept_connections__abort_cuts_a_hung_query_at_once(kept: ProbeConnections) -> None:
    connect = lambda: psycopg.connect(autocommit=True, **probe.connection_params("replica1", 2))  # noqa: E731
    outcome: list[BaseException] = []

    def hang() -> None:
        try:
            kept.query("replica1", "SELECT pg_sleep(20)", connect)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    deadline = time.monotonic() + 10
    while "replica1" not in kept._busy and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    kept.abort("replica1")
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2
    assert len(outcome) == 1
    assert isinstance(outcome[0], psycopg.OperationalError)


def test_describe__one_short_line() -> None:
    assert probe.describe(ValueError("first line\nsecond line")) == "first line"
    assert probe.describe(ValueError("")) == "ValueError"
    assert len(probe.describe(ValueError("x" * 500))) == 200


def test_probes__prepare_nothing_and_bound_themselves_in_their_own_transaction(kept: ProbeConnections) -> None:
    """What PgBouncer in transaction pooling needs: no server-side prepared statement on a kept
    connection however often it probes, a statement timeout that ends with the probe's transaction."""
    config = get_config()
    for _ in range(8):  # past psycopg's default prepare threshold (5)
        assert probe.probe_replica("replica1", config, kept).ok
    connect = lambda: probe.connect("replica1", config)  # noqa: E731
    session = kept.query("replica1", "SELECT count(*) AS prepared, current_setting('statement_timeout') AS t "
                         "FROM pg_prepared_statements", connect)  # fmt: skip
    assert session == {"prepared": 0, "t": "0"}  # the probe's SET LOCAL ended with its transaction
    assert kept._idle["replica1"].conn.prepare_threshold is None  # nothing ever prepared, one statement or many
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        kept.query("replica1", probe.bounded("SELECT pg_sleep(5)", 0.2), connect)
    assert time.monotonic() - started < 2
