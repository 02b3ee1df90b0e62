"""The read decision, shared by the router and the replica backend's fallback. No I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from django.db import connections

from .conf import get_config
from .context import current_state, is_forced, staleness_override
from .health import cache
from .strategies import load_strategy

# Reasons a read went where it went (the metrics of the observability issue count these).
REPLICA, FORCED, ATOMIC, PINNED, NO_USABLE, NO_REPLICAS = (
    "replica", "forced", "atomic", "pinned", "no_usable_replica", "no_replicas",
)  # fmt: skip

decisions: Counter[tuple[str, str]] = Counter()


def choose_read(exclude: Collection[str] = ()) -> tuple[str, str]:
    """(alias, reason) for a read in the current context."""
    config = get_config()
    primary = config.primary
    if not config.replicas:
        reason = NO_REPLICAS
    elif is_forced():
        reason = FORCED
    elif connections[primary].in_atomic_block:
        reason = ATOMIC
    elif current_state().pinned:
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
        if candidates:
            alias = load_strategy(config.strategy).pick(candidates)
            decisions[(alias, REPLICA)] += 1
            return alias, REPLICA
        reason = NO_USABLE
    decisions[(primary, reason)] += 1
    return primary, reason


def note_write() -> str:
    """A write is about to happen: pin the rest of this scope's reads to the primary."""
    config = get_config()
    if config.pin_after_write:
        current_state().pinned = True
    return config.primary
