"""Open replica connections, by alias, so a replica found hung can have them cut.

A server stopped with SIGSTOP (or a host that froze) still has its kernel acknowledging TCP,
so neither keepalives nor ``tcp_user_timeout`` nor ``statement_timeout`` end a query waiting on
it. When the health cache marks such a replica down, shutting down the sockets of its open
connections wakes every waiting query with a connection error, which the replica backend then
retries elsewhere. ``shutdown`` acts on the socket, not the descriptor number, so it cannot hit
an unrelated file that reused the number.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import weakref
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


def register(alias: str, wrapper: Any, raw_connection: Any) -> None:
    """Remember a Django connection wrapper talking to ``alias``, with a socket object of its own.

    The socket is duplicated at connect time, while the descriptor surely belongs to this
    connection; a later shutdown then acts on that socket object, never on a number that another
    file may have taken since. ``release`` closes it with the connection.
    """
    wrapper._dbrouting_socket = duplicate_socket(raw_connection)
    if wrapper._dbrouting_socket is None:
        return
    with _lock:
        _open.setdefault(alias, weakref.WeakSet()).add(wrapper)


def release(wrapper: Any) -> None:
    sock = getattr(wrapper, "_dbrouting_socket", None)
    wrapper._dbrouting_socket = None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


def abort_connections(alias: str) -> int:
    """Shut down every open connection to ``alias``; returns how many."""
    with _lock:
        wrappers = list(_open.get(alias, ()))
    aborted = 0
    for wrapper in wrappers:
        sock = getattr(wrapper, "_dbrouting_socket", None)
        if sock is None:
            continue
        with contextlib.suppress(OSError):  # closed meanwhile: nothing to cut
            sock.shutdown(socket.SHUT_RDWR)
            aborted += 1
    return aborted


def _forget_after_fork() -> None:
    # A forked child must never cut sockets it shares with its parent.
    global _lock
    _lock = threading.Lock()
    _open.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
