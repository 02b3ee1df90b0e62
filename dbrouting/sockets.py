"""Connections whose sockets can be cut: the app's, by alias, and the prober's own, kept per node.

A server stopped with SIGSTOP (or a host that froze) still has its kernel acknowledging TCP, so
neither keepalives nor ``tcp_user_timeout`` nor ``statement_timeout`` end a query waiting on it.
Shutting down the socket wakes the waiting query with a connection error at once. Each socket is
duplicated at connect time, while the descriptor surely belongs to that connection, and
``shutdown`` acts on that socket object: it cannot hit an unrelated file that reused the number.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

_lock = threading.Lock()
_open: dict[str, weakref.WeakSet[Any]] = {}


def duplicate_socket(raw_connection: Any) -> socket.socket | None:
    """A socket object of our own on a psycopg connection's socket, or None if it has none."""
    try:
        return socket.socket(fileno=os.dup(raw_connection.pgconn.socket))
    except (OSError, AttributeError, ValueError, psycopg.Error):
        return None


def _cut(sock: socket.socket | None) -> bool:
    with contextlib.suppress(OSError):  # closed meanwhile: nothing to cut
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            return True
    return False


def register(alias: str, wrapper: Any, raw_connection: Any) -> None:
    """Remember a Django connection wrapper talking to ``alias`` (``release`` forgets it)."""
    release(wrapper)  # its previous connection's, if it reconnected without a close we saw
    wrapper._dbrouting_socket = duplicate_socket(raw_connection)
    if wrapper._dbrouting_socket is not None:
        with _lock:
            _open.setdefault(alias, weakref.WeakSet()).add(wrapper)


def release(wrapper: Any) -> None:
    sock, wrapper._dbrouting_socket = getattr(wrapper, "_dbrouting_socket", None), None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


def abort_connections(alias: str) -> int:
    """Shut down every open app connection to ``alias`` (the replica engine fails them over)."""
    with _lock:
        wrappers = list(_open.get(alias, ()))
    return sum(_cut(getattr(w, "_dbrouting_socket", None)) for w in wrappers)


def with_rows(cursor: psycopg.Cursor[Any]) -> psycopg.Cursor[Any]:
    """The cursor of a query of several statements, moved on to the first result with rows."""
    while cursor.description is None and cursor.nextset():
        pass
    return cursor


def _rolled_back(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        return False
    return True


@dataclass
class _Kept:
    conn: psycopg.Connection[Any]
    sock: socket.socket | None
    born: float

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(OSError, AttributeError):
            self.sock.close()  # type: ignore[union-attr]


class ProbeConnections:
    """The prober's connections: one per node, kept between rounds (no TCP or SCRAM handshake per
    probe), dropped on any error and after ``MAX_AGE_SECONDS``; ``abort`` cuts the one a hung
    probe waits on, so a hung node never holds the prober's thread past the probe timeout."""

    MAX_AGE_SECONDS = 300.0

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """After fork: the parent's connections are not ours to close or use."""
        self._lock = threading.Lock()
        self._idle: dict[str, _Kept] = {}
        self._busy: dict[str, _Kept] = {}

    def query(self, alias: str, sql: str, connect: Callable[[], psycopg.Connection[Any]], keep: bool = False) -> Any:
        """The first row of ``sql`` on ``alias``'s kept connection (one retry on a new one if it went
        away). With ``keep``, an error the server answered (a lock or statement timeout) rolls back
        and keeps the connection, with no retry: a second statement after a probe that succeeded."""
        with self._lock:
            kept = self._idle.pop(alias, None)
        if kept is not None and (
            kept.conn.closed or kept.conn.broken or time.monotonic() - kept.born > self.MAX_AGE_SECONDS
        ):
            kept.discard()
            kept = None
        if kept is not None:
            try:
                return self._ask(alias, kept, sql, keep)
            except psycopg.OperationalError:
                if keep:
                    raise
                # it went away since the last round (a restart): ask once on a new one
        conn = connect()
        return self._ask(alias, _Kept(conn, duplicate_socket(conn), time.monotonic()), sql)

    def _ask(self, alias: str, kept: _Kept, sql: str, keep: bool = False) -> Any:
        with self._lock:
            self._busy[alias] = kept
        try:
            row = with_rows(kept.conn.execute(sql)).fetchone()
        except psycopg.Error:
            if keep and not kept.conn.broken and _rolled_back(kept.conn):
                self._release(alias, kept)
            else:
                kept.discard()
            raise
        except BaseException:
            kept.discard()
            raise
        finally:
            with self._lock:
                self._busy.pop(alias, None)
        self._release(alias, kept)
        assert row is not None
        return row  # as the connection's row factory makes it

    def _release(self, alias: str, kept: _Kept) -> None:
        with self._lock:
            old, self._idle[alias] = self._idle.get(alias), kept
        if old is not None and old is not kept:
            old.discard()

    def abort(self, alias: str) -> None:
        """Cut the connection a hung probe of ``alias`` waits on: the probe fails at once."""
        with self._lock:
            kept = self._busy.get(alias)
        if kept is not None:
            _cut(kept.sock)

    def close_all(self) -> None:
        with self._lock:
            kept, self._idle = list(self._idle.values()), {}
        for k in kept:
            k.discard()


def _forget_after_fork() -> None:
    # A forked child must never cut sockets it shares with its parent.
    global _lock
    _lock = threading.Lock()
    _open.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
