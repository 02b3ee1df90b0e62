"""The SQL that measures a node, on a connection of its own with short timeouts.

A probe never uses Django's connections: the prober keeps one connection per node between rounds
(``sockets.ProbeConnections``). It works behind PgBouncer in transaction pooling: its statement
timeout is set inside its own transaction (``SET LOCAL``, not a startup option, which PgBouncer
refuses), and the whole probe is one simple-protocol query, so nothing is ever prepared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import connections, transaction
from psycopg.rows import dict_row

from . import lsn
from .conf import ALL_BEHIND_POLICIES, OVERRIDE_TABLE, Config
from .sockets import ProbeConnections, with_rows

REPLICA_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 AS replay_age_seconds,
       (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS wal_receiver_status,
       extract(epoch FROM clock_timestamp())::float8 AS clock,
       (SELECT system_identifier FROM pg_control_system()) AS system_identifier
"""

PRIMARY_SQL = f"""
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS lsn,
       extract(epoch FROM clock_timestamp())::float8 AS clock,
       (SELECT system_identifier FROM pg_control_system()) AS system_identifier,
       coalesce(has_table_privilege(to_regclass('{OVERRIDE_TABLE}'), 'SELECT'), false) AS override_readable
"""

# An operator's policy (models.PolicyOverride: one row at most), asked apart from the health query
# and only once that query found the table readable, so that it never fails the primary's probe;
# a lock on the table (DDL) makes it give up at once, not wait.
OVERRIDE_SQL = f"""
SET LOCAL lock_timeout = 50;
SELECT max(policy) AS policy, max(extract(epoch FROM expires_at))::float8 AS until FROM {OVERRIDE_TABLE}
WHERE expires_at IS NULL OR expires_at > now()
"""

# Keys Django adds for its own connections that are not libpq parameters.
_DJANGO_ONLY = ("context", "cursor_factory", "prepare_threshold")


@dataclass(frozen=True)
class ReplicaProbe:
    alias: str
    ok: bool
    duration: float
    started: float = 0.0  # time.monotonic() when the probe began
    timed_out: bool = False  # no answer in time: the server may be hung
    error: str | None = None
    clock: float | None = None  # the server's clock (epoch seconds), to correct replay_age for skew
    system_identifier: int | None = None  # the cluster it belongs to: a standby shares its primary's
    in_recovery: bool | None = None
    receive_lsn: int | None = None
    replay_lsn: int | None = None
    replay_age_seconds: float | None = None  # clock time since the last replayed commit
    wal_receiver_status: str | None = None


@dataclass(frozen=True)
class PrimaryProbe:
    alias: str
    ok: bool
    duration: float
    started: float  # time.monotonic() before asking: the position is at least this recent
    error: str | None = None
    timed_out: bool = False  # no answer in time: the server may be hung
    lsn: int | None = None
    clock: float | None = None
    system_identifier: int | None = None
    policy: str | None = None  # an operator's ALL_BEHIND_POLICY override, in force fleet-wide
    policy_until: float | None = None  # when it expires (epoch seconds), or None: until removed
    policy_error: str | None = None  # the override could not be read: the last one read holds


def connection_params(alias: str, connect_timeout: int) -> dict[str, Any]:
    """libpq parameters for a connection of our own to ``alias`` (``Config.connect_timeout``)."""
    params = connections[alias].get_connection_params()
    for key in _DJANGO_ONLY:
        params.pop(key, None)
    params["connect_timeout"] = connect_timeout
    params["application_name"] = "dbrouting-probe"
    return params


def connect(alias: str, config: Config) -> psycopg.Connection[dict[str, Any]]:
    """A connection of our own: autocommit, rows as dicts, no server-side prepared statements."""
    params = connection_params(alias, config.connect_timeout)
    return psycopg.connect(autocommit=True, row_factory=dict_row, prepare_threshold=None, **params)


def time_limit(timeout: float) -> str:
    """The statement that bounds the rest of its transaction to ``timeout`` seconds."""
    return f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}"


def bounded(sql: str, timeout: float) -> str:
    """``sql`` in one transaction of its own that it may not outlast (``sockets.with_rows`` finds its rows)."""
    return f"BEGIN; {time_limit(timeout)}; {sql.strip()}; COMMIT"


def describe(exc: BaseException) -> str:
    """A short reason for logs and status pages; libpq messages carry no password."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _query(
    alias: str, sql: str, config: Config, kept: ProbeConnections, timeout: float | None = None, keep: bool = False
) -> dict[str, Any]:
    timeout = config.probe_timeout_seconds if timeout is None else timeout
    row: dict[str, Any] = kept.query(alias, bounded(sql, timeout), lambda: connect(alias, config), keep=keep)
    return row


def probe_replica(alias: str, config: Config, kept: ProbeConnections) -> ReplicaProbe:
    start = time.monotonic()
    try:
        row = _query(alias, REPLICA_SQL, config, kept)
    except Exception as exc:  # any failure means "not usable"; the reason is kept for the status page
        return ReplicaProbe(alias, ok=False, duration=time.monotonic() - start, started=start, error=describe(exc))
    age = row["replay_age_seconds"]
    return ReplicaProbe(
        alias, ok=True, duration=time.monotonic() - start, started=start,
        **{**row, "receive_lsn": lsn.parse(row["receive_lsn"]), "replay_lsn": lsn.parse(row["replay_lsn"]),
           "replay_age_seconds": None if age is None else max(0.0, float(age))},
    )  # fmt: skip


def probe_primary(alias: str, config: Config, kept: ProbeConnections) -> PrimaryProbe:
    start = time.monotonic()
    try:
        row = _query(alias, PRIMARY_SQL, config, kept)
        if row.pop("in_recovery"):
            raise ValueError("the primary is in recovery")
    except Exception as exc:
        duration = time.monotonic() - start
        # A connect that timed out, or a connection lost after the whole probe timeout (cut by the
        # prober): the primary hangs. A statement timeout is an answer: slow, not hung.
        slow = isinstance(exc, psycopg.errors.QueryCanceled)
        hung = isinstance(exc, psycopg.errors.ConnectionTimeout) or (
            duration >= config.probe_timeout_seconds and not slow
        )
        return PrimaryProbe(alias, ok=False, duration=duration, started=start, error=describe(exc), timed_out=hung)
    row["lsn"] = lsn.parse(row["lsn"])
    duration = time.monotonic() - start
    if row.pop("override_readable"):
        try:  # a short statement of its own, on the same connection (kept whatever happens)
            if duration > config.probe_timeout_seconds / 2:
                raise TimeoutError("no time left in the primary's probe")
            override = _query(alias, OVERRIDE_SQL, config, kept, min(0.2, config.probe_timeout_seconds / 4), keep=True)
        except Exception as exc:  # a lock, a timeout: the primary answered all the same
            row["policy_error"] = describe(exc)
        else:
            if override["policy"] in ALL_BEHIND_POLICIES:  # (one row at most: max() is that row's)
                row["policy"], row["policy_until"] = override["policy"], override["until"]
    return PrimaryProbe(alias, ok=True, duration=duration, started=start, **row)


REPLICATION_SQL = """
SELECT application_name, coalesce(host(client_addr), 'local') AS client_addr, state, sync_state,
       extract(epoch FROM write_lag)::float8 AS write_lag_seconds,
       extract(epoch FROM flush_lag)::float8 AS flush_lag_seconds,
       extract(epoch FROM replay_lag)::float8 AS replay_lag_seconds,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS replay_lag_bytes
FROM pg_stat_replication ORDER BY application_name
"""


def replication(config: Config, django_connection: Any = None) -> list[dict[str, Any]]:
    """The primary's ``pg_stat_replication``: one dict per standby (raises on failure), on a
    connection of its own, or on ``django_connection`` (its persistent one) in a transaction of its
    own when no transaction is open there (under ATOMIC_REQUESTS, a connection of its own)."""
    if django_connection is None or django_connection.in_atomic_block:  # (SET LOCAL would outlive the query)
        with connect(config.primary, config) as conn:
            return with_rows(conn.execute(bounded(REPLICATION_SQL, config.probe_timeout_seconds))).fetchall()
    with transaction.atomic(using=django_connection.alias), django_connection.cursor() as cursor:
        cursor.execute(time_limit(config.probe_timeout_seconds))
        cursor.execute(REPLICATION_SQL)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
