"""How a scope's replica is picked among the usable ones (no database)."""

from __future__ import annotations

from collections import Counter

from dbrouting.assessment import ReplicaHealth
from dbrouting.strategies import LeastLag, Random, RoundRobin


def replicas(*lags: int) -> list[ReplicaHealth]:
    return [ReplicaHealth(f"r{i}", lag_bytes=lag) for i, lag in enumerate(lags)]


def test_round_robin__takes_each_candidate_in_turn() -> None:
    strategy, candidates = RoundRobin(), replicas(0, 0, 0)
    assert [strategy.pick(candidates) for _ in range(6)] == ["r0", "r1", "r2", "r0", "r1", "r2"]


def test_round_robin__splits_evenly_when_the_candidates_change() -> None:
    strategy = RoundRobin()
    picks = Counter(strategy.pick(replicas(0, 0)) for _ in range(10))
    picks += Counter(strategy.pick(replicas(0, 0, 0)[1:]) for _ in range(10))
    assert picks == {"r0": 5, "r1": 10, "r2": 5}


def test_least_lag__only_the_least_lagged_in_turn() -> None:
    strategy = LeastLag()
    picks = [strategy.pick(replicas(0, 500, 0)) for _ in range(4)]
    assert picks == ["r0", "r2", "r0", "r2"]
    assert strategy.pick(replicas(900, 500)) == "r1"


def test_random__every_candidate_and_only_candidates() -> None:
    picks = Counter(Random().pick(replicas(0, 0)) for _ in range(400))
    assert set(picks) == {"r0", "r1"}
    assert min(picks.values()) > 100  # about half each: never one alone
