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

_lock = threading.Lock()
_open: dict[str, weakref.WeakSet[Any]] = {}


def register(alias: str, wrapper: Any) -> None:
    """Remember a Django connection wrapper whose ``connection`` talks to ``alias``."""
    with _lock:
        _open.setdefault(alias, weakref.WeakSet()).add(wrapper)


def abort_connections(alias: str) -> int:
    """Shut down the socket of every open connection to ``alias``; returns how many."""
    with _lock:
        wrappers = list(_open.get(alias, ()))
    aborted = 0
    for wrapper in wrappers:
        conn = getattr(wrapper, "connection", None)
        if conn is None or conn.closed:
            continue
        try:
            fd = os.dup(conn.pgconn.socket)
        except Exception:  # noqa: S112 (closed meanwhile: nothing to cut)
            continue
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            continue
        with sock, contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
            aborted += 1
    return aborted
