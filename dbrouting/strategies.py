"""How a usable replica is picked. ``DBROUTING['STRATEGY']`` names one of these, or yours:
any class whose instances have ``pick(candidates) -> alias``."""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Sequence
from typing import Protocol

from django.utils.module_loading import import_string

from .health import ReplicaHealth


class Strategy(Protocol):
    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        """One alias among ``candidates`` (never empty)."""


class RoundRobin:
    """Each usable replica in turn (per process)."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        return candidates[next(self._counter) % len(candidates)].alias


class Random:
    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        return random.choice(candidates).alias  # noqa: S311 (load spreading, not security)


class LeastLag:
    """The replica with the smallest byte lag; ties go round-robin."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        best = min(c.lag_bytes or 0 for c in candidates)
        tied = [c for c in candidates if (c.lag_bytes or 0) == best]
        return tied[next(self._counter) % len(tied)].alias


@functools.cache
def load_strategy(path: str) -> Strategy:
    strategy: Strategy = import_string(path)()
    return strategy
