"""Lag-aware read-replica routing for Django and PostgreSQL.

Public API: ``use_primary``, ``max_staleness``, ``routing_scope`` (context managers and
decorators, sync and async) and ``replica_health()`` (the health cache's snapshot).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .context import max_staleness, routing_scope, use_primary

if TYPE_CHECKING:
    from .health import ReplicaHealth

__all__ = ["max_staleness", "replica_health", "routing_scope", "use_primary"]


def replica_health() -> Mapping[str, ReplicaHealth]:
    """Every configured replica's last known health, from memory (no I/O)."""
    from .health import replica_health as snapshot

    return snapshot()
