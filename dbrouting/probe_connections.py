"""The prober's own connections: one per node, kept between rounds, replaced when they fail.

Opening a connection per probe costs a TCP handshake, a backend process and a SCRAM exchange
(thousands of hash iterations on both sides) several times a second per process. Kept
connections cost nothing between probes. Each is dropped on any error and after
``MAX_AGE_SECONDS``, and the prober can cut one whose probe hangs (``abort``), so a hung or
partitioned node never holds the prober's thread beyond the probe timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from .sockets import duplicate_socket

MAX_AGE_SECONDS = 300.0


@dataclass
class _Kept:
    conn: psycopg.Connection[Any]
    sock: socket.socket | None  # a duplicate of its socket, taken at connect, to cut it safely
    born: float

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()


class ProbeConnections:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[str, _Kept] = {}
        self._busy: dict[str, _Kept] = {}

    def query(self, alias: str, sql: str, connect: Callable[[], psycopg.Connection[Any]]) -> tuple[Any, ...]:
        with self._lock:
            kept = self._idle.pop(alias, None)
        if kept is not None and (kept.conn.closed or kept.conn.broken or self._too_old(kept)):
            kept.discard()
            kept = None
        if kept is not None:
            try:
                return self._ask(alias, kept, sql)
            except psycopg.OperationalError:
                pass  # it went away since the last round (a restart): ask once on a new one
        return self._ask(alias, self._open(connect), sql)

    @staticmethod
    def _too_old(kept: _Kept) -> bool:
        return time.monotonic() - kept.born > MAX_AGE_SECONDS

    @staticmethod
    def _open(connect: Callable[[], psycopg.Connection[Any]]) -> _Kept:
        conn = connect()
        return _Kept(conn, duplicate_socket(conn), time.monotonic())

    def _ask(self, alias: str, kept: _Kept, sql: str) -> tuple[Any, ...]:
        with self._lock:
            self._busy[alias] = kept
        try:
            row = kept.conn.execute(sql).fetchone()
        except BaseException:
            with self._lock:
                self._busy.pop(alias, None)
            kept.discard()
            raise
        with self._lock:
            self._busy.pop(alias, None)
            old = self._idle.pop(alias, None)
            self._idle[alias] = kept
        if old is not None:
            old.discard()
        assert row is not None
        return tuple(row)

    def abort(self, alias: str) -> None:
        """Cut the connection a hung probe of ``alias`` waits on: the probe fails at once."""
        with self._lock:
            kept = self._busy.get(alias)
        if kept is not None and kept.sock is not None:
            with contextlib.suppress(OSError):
                kept.sock.shutdown(socket.SHUT_RDWR)

    def close_all(self) -> None:
        with self._lock:
            kept, self._idle = list(self._idle.values()), {}
        for k in kept:
            k.discard()

    def forget(self) -> None:
        """After fork: the parent's connections are not ours to close or use."""
        self._lock = threading.Lock()
        self._idle = {}
        self._busy = {}
