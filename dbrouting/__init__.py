"""Lag-aware read-replica routing for Django and PostgreSQL.

Public API: ``use_primary``, ``max_staleness``, ``routing_scope`` (context managers and
decorators, sync and async), ``replica_health()`` (the health cache's snapshot), and
``causal_token()`` / ``read_after(token)`` (read-your-writes outside requests: a task's reads
see the writes made before the token was taken).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .context import max_staleness, read_after_lsn, routing_scope, use_primary

if TYPE_CHECKING:
    from .assessment import ReplicaHealth

__all__ = ["causal_token", "max_staleness", "read_after", "replica_health", "routing_scope", "use_primary"]


def replica_health() -> Mapping[str, ReplicaHealth]:
    """Every configured replica's last known health, from memory (no I/O)."""
    from .health import cache

    return cache.snapshot().replicas


def causal_token() -> str:
    """A token for reads that must see every write committed so far (pass it to a task)."""
    from .causal import capture

    return capture().encode()


def read_after(token: str | None) -> read_after_lsn:
    """Context manager and decorator: reads in the block see the writes ``token`` covers
    (``None``: no constraint; a malformed token raises ``InvalidToken``, a ``ValueError``)."""
    from .causal import CausalToken

    return read_after_lsn(None if token is None else CausalToken.decode(token).lsn)
