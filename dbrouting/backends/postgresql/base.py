"""A PostgreSQL engine for replica aliases that falls back when the replica fails.

When the replica cannot be connected to, or its connection dies under a read, outside an
atomic block on it: the replica is marked down in the health cache at once, and the same SQL
runs on another usable replica or on the primary. The caller sees no error. Errors that are
not about the connection (bad SQL, a cancelled query) are raised as usual.

Connections to a replica use ``DBROUTING['CONNECT_TIMEOUT_SECONDS']`` and are registered so
the health cache can cut them when it finds the replica hung (see ``dbrouting.sockets``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.db.backends.postgresql import base as postgresql
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

from dbrouting import metrics, sockets
from dbrouting.assessment import DOWN
from dbrouting.conf import get_config
from dbrouting.exceptions import PrimaryUnavailable, ReplicaMarkedDown
from dbrouting.health import cache
from dbrouting.probe import describe
from dbrouting.router import decide

logger = logging.getLogger("dbrouting")

# SQLSTATEs that mean the server is going away: admin shutdown, crash shutdown, cannot connect now.
_SERVER_GONE = {"57P01", "57P02", "57P03"}


class FailoverMixin:
    """The fallback behaviour, over any PostgreSQL ``DatabaseWrapper`` (see the module doc).

    Only aliases listed in ``DBROUTING['REPLICAS']`` fall back; on any other alias this engine
    behaves as Django's, but that a primary whose last probe hung is not connected to (the
    request fails at once, as it would after the connect timeout).

    ``_cursor`` and ``_close`` are Django's private API (checked against Django 5.2): no public
    hook sees a connection fail before the query is retried, or closes with the wrapper.
    """

    alias: str
    connection: Any
    in_atomic_block: bool

    def _is_replica(self) -> bool:
        return self.alias in get_config().replicas

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()  # type: ignore[misc]
        if self._is_replica():
            params["connect_timeout"] = get_config().connect_timeout
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)  # type: ignore[misc]
        sockets.register(self.alias, self, connection)
        return connection

    def connect(self) -> None:
        # Found down (say, hung) while this request waited on it: do not spend a connect timeout.
        if self._is_replica() and not self.in_atomic_block and self._known_down():
            raise ReplicaMarkedDown(f"{self.alias} is marked down by the health cache")
        primary = cache.latest.primary  # a verdict that has aged out no longer holds (below)
        config = get_config()
        if (
            primary is not None and primary.timed_out and primary.alias == self.alias
            and time.monotonic() - primary.started <= config.stall_limit + config.connect_timeout_seconds
        ):  # fmt: skip
            # Its last probe hung: a connection would wait its whole timeout, then fail too.
            raise PrimaryUnavailable(f"the primary {self.alias} does not answer its probes ({primary.error})")
        super().connect()  # type: ignore[misc]

    def _close(self) -> None:
        sockets.release(self)
        super()._close()  # type: ignore[misc]

    def _cursor(self, name: str | None = None) -> Any:
        if not self._is_replica() or self.in_atomic_block:
            return super()._cursor(name)  # type: ignore[misc]
        if self._known_down():
            # Marked down since the router chose it: do not wait on it.
            return self._fallback("marked down by the health cache", "marked_down")._cursor(name)
        try:
            return super()._cursor(name)  # type: ignore[misc]
        except DatabaseError as exc:
            if not self.is_connection_failure(exc):
                raise
            return self._fallback(describe(exc), "connect")._cursor(name)

    def make_cursor(self, cursor: Any) -> CursorWrapper:
        return FailoverCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor: Any) -> CursorDebugWrapper:
        return FailoverCursorDebugWrapper(cursor, self)

    # -- failure handling --------------------------------------------------------------

    def _known_down(self) -> bool:
        health = cache.snapshot().replicas.get(self.alias)
        return health is not None and health.state == DOWN

    def is_connection_failure(self, exc: BaseException) -> bool:
        """True when the error is about the connection and a retry elsewhere is safe."""
        if self.in_atomic_block or not self._is_replica() or not isinstance(exc, OperationalError | InterfaceError):
            return False
        raw = self.connection
        if raw is None or raw.closed or getattr(raw, "broken", False):
            return True
        sqlstate = getattr(exc.__cause__, "sqlstate", None) or ""
        return sqlstate.startswith("08") or sqlstate in _SERVER_GONE

    def _fallback(self, reason: str, cause: str) -> Any:
        """Mark this replica down, drop its connection, and return where the read goes now."""
        metrics.fallbacks_total.labels(self.alias, cause).inc()
        cache.mark_down(self.alias, reason)
        with contextlib.suppress(Exception):
            self.close()  # type: ignore[attr-defined]
        alias = decide(exclude={self.alias}) or get_config().primary  # no instance hint: never None
        logger.info("read on %s failed over to %s (%s)", self.alias, alias, reason)
        return connections[alias]


class _Failover(CursorWrapper):
    """Retry a read that lost its replica connection on the fallback node, same SQL."""

    def _retry(self, exc: DatabaseError) -> bool:
        """Move this wrapper onto the fallback node; False when the error is not ours to hide."""
        if not (isinstance(self.db, FailoverMixin) and self.db.is_connection_failure(exc)):
            return False
        name = getattr(self.cursor, "name", None)  # keep a server-side cursor server-side
        target = self.db._fallback(describe(exc), "broken")
        fresh = target._cursor(name)
        self.cursor, self.db = fresh.cursor, fresh.db
        return True

    def _run(self, method: str, *args: Any) -> Any:
        """The wrapped method, once more on the fallback node if the connection was lost."""
        try:
            return getattr(super(), method)(*args)
        except DatabaseError as exc:
            if not self._retry(exc):
                raise
            return getattr(self, method)(*args)

    def execute(self, sql: Any, params: Any = None) -> Any:
        return self._run("execute", sql, params)

    def executemany(self, sql: Any, param_list: Any) -> Any:
        return self._run("executemany", sql, param_list)

    def callproc(self, procname: Any, params: Any = None, kparams: Any = None) -> Any:
        return self._run("callproc", procname, params, kparams)


class FailoverCursorWrapper(_Failover):
    pass


class FailoverCursorDebugWrapper(_Failover, CursorDebugWrapper):
    pass


class DatabaseWrapper(FailoverMixin, postgresql.DatabaseWrapper):
    pass
