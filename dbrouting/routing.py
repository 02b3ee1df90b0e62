"""The read decision, shared by the router and the replica backend's fallback. No I/O."""

from __future__ import annotations

from collections.abc import Collection

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


def choose_read(exclude: Collection[str] = ()) -> tuple[str, str]:
    """(alias, reason) for a read in the current context."""
    config = get_config()
    primary = config.primary
    state = current_state()
    if not config.replicas:
        reason = NO_REPLICAS
    elif is_forced():
        reason = FORCED
    elif connections[primary].in_atomic_block:
        reason = ATOMIC
    elif state.pinned:
        reason = PINNED
    else:
        tolerance = staleness_override()
        if tolerance is None:
            tolerance = config.max_staleness_seconds
        snapshot = cache.snapshot()
        candidates = [
            health
            for alias in config.replicas
            if alias not in exclude
            and (health := snapshot.get(alias)) is not None
            and health.usable(tolerance, config.max_lag_bytes)
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
