"""The read decision, shared by the router and the replica backend's fallback. No I/O."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from typing import Any

from django.db import connections

from .conf import get_config
from .context import current_state, is_forced, required_lsn, staleness_override
from .health import cache
from .metrics import count_read
from .strategies import load_strategy

# Reasons a read went where it went (dbrouting_reads_total's "reason" label).
REPLICA, FORCED, ATOMIC, PINNED, CAUSAL, NO_USABLE, NO_REPLICAS = (
    "replica", "forced", "atomic", "pinned", "causal", "no_usable_replica", "no_replicas",
)  # fmt: skip


_thread = threading.local()


def _in_atomic_block(primary: str) -> bool:
    """``connections[primary].in_atomic_block``, without the per-call lookup of the wrapper.

    Django keeps one connection wrapper per thread and alias for the thread's life (its handler
    is thread-critical), so the wrapper found once in a thread can be asked again; the lookup
    through asgiref's ``Local`` costs more than all the rest of a routing decision.
    """
    wrapper = getattr(_thread, "primary", None)
    if wrapper is None or wrapper.alias != primary:
        wrapper = _thread.primary = connections[primary]
    return bool(wrapper.in_atomic_block)


def choose_read(exclude: Collection[str] = ()) -> tuple[str, str]:
    """(alias, reason) for a read in the current context."""
    config = get_config()
    primary = config.primary
    state = current_state()
    if not config.replicas:
        reason = NO_REPLICAS
    elif is_forced():
        reason = FORCED
    elif _in_atomic_block(primary):
        reason = ATOMIC
    elif state.pinned:
        reason = PINNED
    else:
        tolerance = staleness_override()
        if tolerance is None:
            tolerance = config.max_staleness_seconds
        snapshot = cache.snapshot()
        now = time.monotonic()
        # A snapshot older than this means the prober is stuck: trust it no more.
        max_age = 3 * config.check_interval_seconds + 2 * config.probe_timeout_seconds
        candidates = [
            health
            for alias in config.replicas
            if alias not in exclude
            and (health := snapshot.get(alias)) is not None
            and health.usable(tolerance, config.max_lag_bytes, now, max_age)
        ]
        reason = NO_USABLE
        lsn = required_lsn()
        if lsn is not None and candidates:
            # Read-your-writes: only replicas known to have replayed the client's last write.
            candidates = [h for h in candidates if h.replay_lsn is not None and h.replay_lsn >= lsn]
            reason = CAUSAL
        if candidates:
            alias = load_strategy(config.strategy).pick(candidates)
            count_read(alias, REPLICA)
            state.reads.add(alias)
            return alias, REPLICA
    count_read(primary, reason)
    state.reads.add(primary)
    return primary, reason


def note_write() -> str:
    """A write is about to happen: pin the rest of this scope's reads to the primary."""
    config = get_config()
    state = current_state()
    state.wrote = True
    if config.pin_after_write:
        state.pinned = True
    return config.primary


# Statements that change data or schema. A write made without the router (``.using("default")``,
# raw SQL on a cursor) must pin the rest of the scope too: this classifies what the primary runs.
WRITE_VERBS = frozenset(
    {
        "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "ALTER", "DROP", "TRUNCATE", "COPY", "GRANT",
        "REVOKE", "COMMENT", "LOCK", "CALL", "DO", "REFRESH", "REINDEX", "CLUSTER", "VACUUM", "SECURITY",
        "IMPORT",
    }
)  # fmt: skip


def _statement_writes(sql: object) -> bool:
    text = sql if isinstance(sql, str) else str(sql)
    head = text.lstrip(" \t\n(").split(None, 1)
    if not head:
        return False
    verb = head[0].upper()
    if verb == "WITH":  # a data-modifying CTE
        upper = text.upper()
        return any(f"{word} " in upper for word in ("INSERT", "UPDATE", "DELETE", "MERGE"))
    return verb in WRITE_VERBS


def detect_writes(execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
    """``execute_wrapper`` on the primary's connections: a write pins the current scope."""
    if _statement_writes(sql):
        note_write()
    return execute(sql, params, many, context)


def install_write_detector(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: every connection to the primary, in every thread."""
    if connection.alias == get_config().primary and detect_writes not in connection.execute_wrappers:
        connection.execute_wrappers.append(detect_writes)
