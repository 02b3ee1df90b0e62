"""How a scope's replica is picked among the usable ones. ``DBROUTING['STRATEGY']`` names one of
these, or yours: any class whose instances have ``pick(candidates) -> alias``. The router asks
once per scope (a request, a task), when it needs a replica; the scope then stays on it."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .assessment import ReplicaHealth


class Strategy(Protocol):
    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        """One alias among ``candidates`` (never empty, in ``REPLICAS`` order)."""


class RoundRobin:
    """Each usable replica in turn (per process)."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        return candidates[next(self._counter) % len(candidates)].alias


class Random:
    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        return random.choice(candidates).alias  # noqa: S311 (load spreading, not security)


class LeastLag(RoundRobin):
    """The replica with the smallest byte lag; ties go round-robin."""

    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        best = min(c.lag_bytes or 0 for c in candidates)
        return super().pick([c for c in candidates if (c.lag_bytes or 0) == best])
