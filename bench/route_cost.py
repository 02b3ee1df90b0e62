"""B1 routing cost: nanoseconds per ``db_for_read`` call, with a warm health cache.

    .venv/bin/python bench/route_cost.py [--calls 50000] [--rounds 12] [--quick]

Each side is called the way the ORM calls it, through Django's ``ConnectionRouter``
(``router.db_for_read(Gist)``): no router; django-multidb-router's ``ReplicaRouter``
(round-robin, no health) and its ``PinningReplicaRouter`` (plus a thread-local pin check); and
ours, ``PrimaryReplicaRouter`` (routing state, atomic-block check, health snapshot, staleness
tolerance, strategy, Prometheus counter). Rounds alternate the sides (A B C, C B A, ...), the
timing loop's own cost (a call of a no-op function) is subtracted, figures are medians over rounds.

Ours is timed twice, in one routing scope (as the reads of one request): in the common case (the
default staleness tolerance, no routing block, not pinned), where the scope's replica is checked
against the usable replicas the health snapshot keeps for the default tolerance; and inside a
``max_staleness()`` block, where every call works out the usable replicas anew (each replica's
health against the tolerance, the snapshot's age).
"""

from __future__ import annotations

import gc
import itertools
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

SIDES = ["no_router", "multidb", "multidb_pinning", "dbrouting", "dbrouting_own_tolerance"]
LABELS = {
    "no_router": "no router",
    "multidb": "multidb\nReplicaRouter",
    "multidb_pinning": "multidb\nPinningReplicaRouter",
    "dbrouting": "dbrouting\n(common case)",
    "dbrouting_own_tolerance": "dbrouting\nin max_staleness()",
}


def per_call_ns(func: Callable[[Any], Any], model: Any, calls: int) -> float:
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in itertools.repeat(None, calls):
            func(model)
        return (time.perf_counter_ns() - start) / calls
    finally:
        gc.enable()


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--calls", type=int, default=50_000, help="calls per side per round")
    p.add_argument("--rounds", type=int, default=12)
    args = common.parse(p)
    if args.quick:
        args.calls, args.rounds = 2_000, 2
    figures = common.Figures("b1", args)
    with common.running_cluster(args) as cluster:
        common.start_django(cluster)
        from django.db.utils import ConnectionRouter
        from multidb import PinningReplicaRouter, ReplicaRouter

        from dbrouting import max_staleness, routing_scope
        from dbrouting.router import PrimaryReplicaRouter
        from gists.models import Gist

        common.ensure_gists(cluster, 10)
        common.wait_until_usable()
        routers = {
            "no_router": ConnectionRouter([]),
            "multidb": ConnectionRouter([ReplicaRouter()]),
            "multidb_pinning": ConnectionRouter([PinningReplicaRouter()]),
            "dbrouting": ConnectionRouter([PrimaryReplicaRouter()]),
        }
        routers["dbrouting_own_tolerance"] = routers["dbrouting"]
        blocks = {"dbrouting_own_tolerance": lambda: max_staleness(5.0)}
        picked = set()
        for _ in range(4):  # successive scopes (requests) spread over the replicas
            with routing_scope():
                picked.add(routers["dbrouting"].db_for_read(Gist))
        assert picked == {"replica1", "replica2"}, f"our router did not spread reads over the replicas: {picked}"
        scope = routing_scope()  # fresh routing state: not pinned by the migrations' writes
        scope.__enter__()

        def noop(model: Any) -> str:
            return "default"

        samples: dict[str, list[float]] = {side: [] for side in SIDES}
        loop_ns: list[float] = []
        for _, side in common.abba(SIDES, args.rounds):
            loop_ns.append(per_call_ns(noop, Gist, args.calls))
            with blocks[side]() if side in blocks else nullcontext():
                samples[side].append(per_call_ns(routers[side].db_for_read, Gist, args.calls))
            # ns per call, net of the loop: as the ORM pays it for each read.
            samples[side][-1] -= loop_ns[-1]
        direct = {}
        for name, router in (("multidb", ReplicaRouter()), ("dbrouting", PrimaryReplicaRouter())):
            direct[name] = common.median(
                [per_call_ns(router.db_for_read, Gist, args.calls) - per_call_ns(noop, Gist, args.calls) for _ in "ab"]
            )
        scope.__exit__(None, None, None)

    ns = {side: common.median(values) for side, values in samples.items()}
    rounds = range(args.rounds)
    ratio = common.median([samples["dbrouting"][r] / samples["multidb"][r] for r in rounds])
    for side in SIDES:
        figures.add(f"b1_route_ns_{side}", ns[side], 0)
    figures.add("b1_route_cost_ratio_vs_multidb", ratio, 2)
    figures.add("b1_route_cost_ratio_vs_multidb_pinning", ns["dbrouting"] / ns["multidb_pinning"], 2)
    figures.add("b1_route_cost_ratio_vs_no_router", ns["dbrouting"] / ns["no_router"], 2)
    figures.add("b1_route_overhead_ns_vs_no_router", ns["dbrouting"] - ns["no_router"], 0)
    figures.add("b1_router_method_ns_dbrouting", direct["dbrouting"], 0)
    figures.add("b1_router_method_ns_multidb", direct["multidb"], 0)
    figures.add(
        "b1_route_cost_ratio_own_tolerance_vs_multidb",
        common.median([samples["dbrouting_own_tolerance"][r] / samples["multidb"][r] for r in rounds]),
        2,
    )
    figures.add("b1_loop_ns", common.median(loop_ns), 0)
    figures.add("b1_calls_per_side_per_round", args.calls)
    figures.add("b1_rounds", args.rounds)

    def draw(ax: Any) -> None:
        bars = ax.bar(
            [LABELS[s] for s in SIDES], [ns[s] for s in SIDES], color=["#999", "#c96", "#c96", "#369", "#69c"]
        )
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
        ax.set_ylabel("ns per db_for_read call (median)")
        ax.tick_params(axis="x", labelsize=7)

    figures.plot("b1-route-cost", draw, f"B1 routing cost: ours / multidb ReplicaRouter = {ratio:.2f}", size=(9.5, 3.8))
    figures.save()


if __name__ == "__main__":
    main()
