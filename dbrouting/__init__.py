"""Lag-aware read-replica routing for Django and PostgreSQL.

Public API: ``use_primary``, ``max_staleness``, ``when_all_behind``, ``routing_scope`` (context
managers and decorators, sync and async), ``replica_health()`` (the health cache's snapshot),
``primary_available()`` (False in degraded mode: the primary is unreachable), and
``causal_token()`` / ``read_after(token)`` (read-your-writes outside requests: a task's reads
see the writes made before the token was taken).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .causal import causal_token, read_after
from .context import max_staleness, routing_scope, use_primary, when_all_behind
from .health import cache

if TYPE_CHECKING:
    from .assessment import ReplicaHealth

__all__ = [
    "causal_token", "max_staleness", "primary_available", "read_after", "replica_health", "routing_scope",
    "use_primary", "when_all_behind",
]  # fmt: skip


def replica_health() -> Mapping[str, ReplicaHealth]:
    """Every configured replica's last known health, from memory (no I/O)."""
    return cache.snapshot().replicas


def primary_available() -> bool:
    """False while the primary does not answer its probes (degraded mode: writes fail, reads go to
    the replicas), from memory; True before the first probe."""
    return cache.snapshot().primary_up
