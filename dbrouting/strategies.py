"""How a usable replica is picked. ``DBROUTING['STRATEGY']`` names one of these, or yours:
any class whose instances have ``pick(candidates) -> alias``.

A strategy may also have ``picker(candidates) -> Callable[[], str]``: the router builds one per
health snapshot and calls it for every read in the common case (the default tolerance, no
block, no pin), so that ``pick``'s work on the candidates is done once per probe round.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from django.utils.module_loading import import_string

from .assessment import ReplicaHealth


class Strategy(Protocol):
    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        """One alias among ``candidates`` (never empty)."""


class _Turns:
    """Turns over the aliases of successive snapshots, each going on where the last left off
    (a new snapshot every probe round must not restart the turns at the first replica)."""

    def __init__(self) -> None:
        self._next: Callable[[], str] | None = None

    def over(self, aliases: tuple[str, ...]) -> Callable[[], str]:
        if self._next is not None:
            following = self._next()  # whose turn it was in the last snapshot
            if following in aliases:
                at = aliases.index(following)
                aliases = aliases[at:] + aliases[:at]
        self._next = itertools.cycle(aliases).__next__
        return self._next


class RoundRobin:
    """Each usable replica in turn (per process)."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._turns = _Turns()

    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        return candidates[next(self._counter) % len(candidates)].alias

    def picker(self, candidates: Sequence[ReplicaHealth]) -> Callable[[], str]:
        return self._turns.over(tuple(c.alias for c in candidates))


class Random:
    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        return random.choice(candidates).alias  # noqa: S311 (load spreading, not security)

    def picker(self, candidates: Sequence[ReplicaHealth]) -> Callable[[], str]:
        return functools.partial(random.choice, tuple(c.alias for c in candidates))


class LeastLag:
    """The replica with the smallest byte lag; ties go round-robin."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._turns = _Turns()

    def pick(self, candidates: Sequence[ReplicaHealth]) -> str:
        tied = self._tied(candidates)
        return tied[next(self._counter) % len(tied)]

    def picker(self, candidates: Sequence[ReplicaHealth]) -> Callable[[], str]:
        return self._turns.over(self._tied(candidates))

    @staticmethod
    def _tied(candidates: Sequence[ReplicaHealth]) -> tuple[str, ...]:
        best = min(c.lag_bytes or 0 for c in candidates)
        return tuple(c.alias for c in candidates if (c.lag_bytes or 0) == best)


@functools.cache
def load_strategy(path: str) -> Strategy:
    strategy: Strategy = import_string(path)()
    return strategy
