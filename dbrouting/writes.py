"""Which statements write, and the pin a write causes.

A write made without the router (``.using("default")``, raw SQL on a cursor) must pin the rest of
its scope too, so every statement the primary runs is classified. An allow-list: a statement is
read-only when it starts with a read-only verb and names no data-modifying or locking keyword
outside string literals, quoted identifiers and comments; anything else counts as a write (the
cost of a wrong guess is one scope read from the primary, never a stale read). A function called
by a SELECT that writes cannot be seen from the SQL: wrap such calls in ``use_primary()``.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from django.db import DatabaseError
from psycopg import sql as psycopg_sql

from . import causal, sockets
from .conf import get_config
from .context import current_state

READ_ONLY_VERBS = frozenset(
    {
        "SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "FETCH", "MOVE", "DECLARE", "CLOSE",
        "SET", "RESET", "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE",
        "DEALLOCATE", "DISCARD", "LISTEN", "UNLISTEN",
    }
)  # fmt: skip
# In a read-only verb's statement, these words mean it changes data (a data-modifying CTE,
# SELECT ... INTO a new table) or takes row locks (FOR UPDATE / FOR SHARE ...).
WRITE_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "SHARE"})

# String literals, quoted identifiers, comments and dollar-quoted bodies: never keywords.
_NOT_KEYWORDS = re.compile(
    r"""[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|\$([A-Za-z_][A-Za-z0-9_]*|)\$.*?\$\1\$""",
    re.DOTALL,
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def statement_text(sql: Any, connection: Any = None) -> str:
    """The SQL as text: a str, bytes, or a psycopg ``sql.Composable`` rendered for ``connection``."""
    if isinstance(sql, psycopg_sql.Composable):
        return sql.as_string(connection)
    if isinstance(sql, bytes | bytearray | memoryview):
        return bytes(sql).decode("utf-8", "replace")
    return str(sql)


def writes(sql: Any, connection: Any = None) -> bool:
    """True unless every statement in ``sql`` is on the read-only allow-list."""
    text = _NOT_KEYWORDS.sub(" ", statement_text(sql, connection))
    for statement in text.split(";"):
        words = [w.upper() for w in _WORD.findall(statement)]
        if words and (words[0] not in READ_ONLY_VERBS or not WRITE_WORDS.isdisjoint(words)):
            return True
    return False


def note_write() -> str:
    """A write is about to happen: pin the rest of this scope's reads to the primary."""
    config = get_config()
    state = current_state()
    state.wrote = True
    if config.pin_after_write:
        state.pinned = True
    return config.primary


def detect_writes(execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
    """``execute_wrapper`` on the primary's connections: a write pins the current scope. A write
    committed as it ran (autocommit) has its WAL position read at once, on the connection that
    just answered: should the primary go away before the request ends, the client's causal token
    is still known (else its reads would have to stay on the primary, see ``causal.pin``)."""
    wrapper = context["connection"]
    if not writes(sql, getattr(wrapper, "connection", None)):
        return execute(sql, params, many, context)
    note_write()
    result = execute(sql, params, many, context)
    state = current_state()
    state.write_lsn = None  # not known past this write, unless read now
    if not wrapper.in_atomic_block:  # committed: what it wrote, and every earlier commit, is below
        with contextlib.suppress(DatabaseError):  # the write stands; the request's end tries again
            state.write_lsn = causal.capture().lsn
    return result


def install_write_detector(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: every connection to the primary, in every thread, gets
    the write detector, and is registered so the prober can cut it when it finds the primary hung."""
    if connection.alias == get_config().primary:
        if getattr(connection, "_dbrouting_socket", None) is None:  # dbrouting's engine registered it
            sockets.register(connection.alias, connection, connection.connection)
        if detect_writes not in connection.execute_wrappers:
            connection.execute_wrappers.append(detect_writes)
