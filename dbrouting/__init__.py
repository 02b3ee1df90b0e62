"""Lag-aware read-replica routing for Django and PostgreSQL.

Public API: ``use_primary``, ``max_staleness``, ``routing_scope`` (context managers and
decorators, sync and async), ``replica_health()`` (the health cache's snapshot),
``primary_available()`` (False in degraded mode: the primary is unreachable), and
``causal_token()`` / ``read_after(token)`` (read-your-writes outside requests: a task's reads
see the writes made before the token was taken).
"""

from __future__ import annotations

from .causal import causal_token, read_after
from .context import max_staleness, routing_scope, use_primary
from .health import primary_available, replica_health

__all__ = [
    "causal_token", "max_staleness", "primary_available", "read_after", "replica_health", "routing_scope",
    "use_primary",
]  # fmt: skip
