"""The read decision, shared by the router and the replica backend's fallback. No I/O."""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.signals import setting_changed
from django.db import connections
from django.dispatch import receiver

from . import context
from .assessment import ReplicaHealth
from .conf import Config, get_config
from .context import NO_BLOCKS, blocks_var, current_state, is_forced, required_lsn, staleness_override, state_var
from .health import cache
from .metrics import count_read, read_tick
from .strategies import load_strategy

# Reasons a read went where it went (dbrouting_reads_total's "reason" label).
REPLICA, FORCED, ATOMIC, PINNED, CAUSAL, NO_USABLE, NO_REPLICAS = (
    "replica", "forced", "atomic", "pinned", "causal", "no_usable_replica", "no_replicas",
)  # fmt: skip


_thread = threading.local()
_monotonic = time.monotonic  # a global, not an attribute lookup on each read


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


@dataclass(frozen=True, slots=True)
class RouteTable:
    """The common case's answer, worked out once per health snapshot: the replicas usable under
    the default tolerance, how to pick among them, and until when that holds without a new
    probe (a replica that was behind falls further behind as its snapshot ages, and a snapshot
    too old is not trusted at all). Dropped when the settings change."""

    config: Config | None
    snapshot: Mapping[str, ReplicaHealth] | None
    valid_until: float
    pick: Callable[[], str]
    ticks: Mapping[str, Callable[[], int]]
    primary: str = ""
    record_reads: bool = False  # for the SERVED_BY_HEADER

    def serves(self, config: Config, snapshot: Mapping[str, ReplicaHealth], now: float) -> bool:
        return self.snapshot is snapshot and self.config is config and now < self.valid_until


_NO_TABLE = RouteTable(None, None, -math.inf, lambda: "", {})
_table = _NO_TABLE
_table_lock = threading.Lock()  # publishing against dropping on a settings change


def read_alias(*args: Any, **hints: Any) -> str:
    """``db_for_read`` itself (the router's method is this function: one call less per read).

    The common case (the default tolerance, no routing block, a routing state that is neither
    pinned nor holding a causal token, no transaction on the primary, a route table for the
    current snapshot that has not expired) takes the table's pick; anything else asks
    :func:`choose_read`. Every test here is a read of memory.
    """
    table = _table
    if (
        table.snapshot is cache.latest
        and blocks_var.get() is NO_BLOCKS
        and not context.migrating
        and _monotonic() < table.valid_until
    ):
        # No state yet: choose_read() makes it, in this context, before any copy of the context
        # (a task, a sync_to_async thread) can write and pin it.
        state = state_var.get()
        if state is not None and not (state.pinned or state.token_lsn is not None):
            wrapper = getattr(_thread, "primary", None)  # _in_atomic_block(), inlined
            if wrapper is not None and wrapper.alias == table.primary and not wrapper.in_atomic_block:
                alias = table.pick()
                table.ticks[alias]()
                if table.record_reads:
                    state.reads.add(alias)
                return alias
    return choose_read()[0]


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
        override = staleness_override()
        tolerance = config.max_staleness_seconds if override is None else override
        snapshot = cache.snapshot()
        now = time.monotonic()
        max_age = _max_age(config)
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
            if not exclude and override is None and lsn is None:
                # The common case: the turns go on in the route table, made anew if need be.
                table = _table
                if not table.serves(config, snapshot, now):
                    table = _publish(config, snapshot, candidates, now)
                alias = table.pick()
                table.ticks[alias]()
            else:
                alias = load_strategy(config.strategy).pick(candidates)
                count_read(alias, REPLICA)
            state.reads.add(alias)
            return alias, REPLICA
    count_read(primary, reason)
    state.reads.add(primary)
    return primary, reason


def _max_age(config: Config) -> float:
    """A snapshot older than this means the prober is stuck: trust it no more."""
    return 3 * config.check_interval_seconds + 2 * config.probe_timeout_seconds


def route_table(
    config: Config, snapshot: Mapping[str, ReplicaHealth], candidates: Sequence[ReplicaHealth], now: float
) -> RouteTable:
    """The table for ``candidates``, the replicas of ``snapshot`` usable at ``now`` (monotonic)
    under the default tolerance."""
    max_age = _max_age(config)
    # now + max_age bounds the table's life if the prober died.
    valid_until = min([now + max_age, *(h.usable_until(config.max_staleness_seconds, max_age) for h in candidates)])
    strategy = load_strategy(config.strategy)
    picker = getattr(strategy, "picker", None)
    pick = picker(candidates) if picker is not None else functools.partial(strategy.pick, tuple(candidates))
    ticks = {h.alias: read_tick(h.alias, REPLICA) for h in candidates}
    return RouteTable(config, snapshot, valid_until, pick, ticks, config.primary, config.served_by_header)


def _publish(
    config: Config, snapshot: Mapping[str, ReplicaHealth], candidates: Sequence[ReplicaHealth], now: float
) -> RouteTable:
    """Make the table for this snapshot the one in use, unless the settings changed meanwhile."""
    global _table
    table = route_table(config, snapshot, candidates, now)
    with _table_lock:
        if config is get_config():
            _table = table
    return table


@receiver(setting_changed)
def _drop_table(*, setting: str, **kwargs: Any) -> None:
    global _table
    if setting in ("DBROUTING", "DATABASES", "DEBUG"):
        with _table_lock:
            _table = _NO_TABLE


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
