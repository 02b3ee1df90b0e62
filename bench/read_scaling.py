"""B3 read scaling: nearby searches per second with the primary alone, one replica, two replicas.

    .venv/bin/python bench/read_scaling.py [--rows 200000] [--node-cpus 0.5] [--clients 8] [--rounds 5]

Each PostgreSQL node gets the same CPU quota (``bench/cpulimit.py``: a cgroup per node, printed
as ``b3_cgroup_<node>``), so the nodes behave as separate, equally sized hosts and the database
is the bottleneck. ``--clients`` threads run nearby searches through the ORM and the router, each
search in a routing scope of its own (as each request is)
(``geo.nearby``: the 100 nearest gists within 2 km of a random point near one of six cities,
over ``--rows`` gists), in three configurations that alternate round after round:

- ``primary``: every read on the primary (``use_primary()``);
- ``1_replica``: ``DBROUTING["REPLICAS"] = ["replica1"]``: every read on replica1;
- ``2_replicas``: the project's settings: reads spread over both replicas.

Each reader thread runs the same sequence of searches in every configuration (its random
generator is reseeded when the configuration changes). Each configuration warms up, then
completed searches are counted over ``--seconds``. The scaling figures are medians over rounds
of the per-round ratio to ``primary``. The load generator itself runs in a cgroup of the same
high weight as the nodes' (no quota), so the machine's other work does not starve it.

Then write latency on the primary (p50, p99 of ``Gist.objects.create``) under ``--write-rate``
writes per second, while the same read load runs on the primary, or offloaded to the replicas.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

CONFIGS = ["primary", "1_replica", "2_replicas"]
RADIUS_M, LIMIT = 2_000.0, 100


class Load:
    """Reader threads, and optionally a writer, tagging what they complete with the phase."""

    def __init__(self, clients: int, write_rate: float = 0.0) -> None:
        self.phase = ("idle", -1)
        self.reads: list[tuple[tuple[str, int], float]] = []
        self.writes: list[tuple[tuple[str, int], float, float]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.write_rate = write_rate
        self.threads = [threading.Thread(target=self.reader, args=(i,), daemon=True) for i in range(clients)]
        if write_rate:
            self.threads.append(threading.Thread(target=self.writer, daemon=True))
        for thread in self.threads:
            thread.start()

    def reader(self, seed: int) -> None:
        from django.db import connections

        from dbrouting import routing_scope, use_primary
        from gists import geo
        from gists.models import Gist

        rng, current = random.Random(seed), None  # noqa: S311 (search points, not secrets)
        while not self.stop.is_set():
            phase = self.phase
            if phase != current:  # the same searches, in the same order, in every phase
                rng, current = random.Random(seed), phase  # noqa: S311 (search points, not secrets)
            lat, lng = rng.choice(common.CITIES)
            try:
                # One search is one request: a routing scope of its own, as RoutingMiddleware makes.
                with routing_scope(), use_primary() if phase[0] == "primary" else nullcontext():
                    found = geo.nearby(
                        Gist.objects.all(), lat + rng.uniform(-0.1, 0.1), lng + rng.uniform(-0.1, 0.1), RADIUS_M, LIMIT
                    )
                    list(found)
                self.reads.append((phase, time.monotonic()))
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        connections.close_all()

    def writer(self) -> None:
        from django.db import connections

        from gists.models import Gist

        interval = 1 / self.write_rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += interval
            phase, start = self.phase, time.monotonic()
            Gist.objects.create(title="write", content="latency probe", latitude=10.0, longitude=10.0)
            self.writes.append((phase, start, time.monotonic() - start))
            time.sleep(max(0.0, next_at - time.monotonic()))
        connections.close_all()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def configure(name: str, override: list[Any]) -> None:
    """Apply a configuration: the replicas the router may use (settings), then wait for them."""
    from django.conf import settings
    from django.test import override_settings

    while override:
        override.pop().disable()
    replicas = ["replica1"] if name == "1_replica" else ["replica1", "replica2"]
    if name == "1_replica":
        override.append(override_settings(DBROUTING={**settings.DBROUTING, "REPLICAS": replicas}))
        override[-1].enable()
    common.wait_until_usable(replicas)


def measure(load: Load, phases: list[tuple[int, str]], args: Any, apply: Callable[[str], None]) -> dict[str, Any]:
    """Per (round, config): reads per second, and the latencies of writes, within the window."""
    out: dict[str, Any] = {}
    for r, name in phases:
        apply(name)
        load.phase = (name, r)
        time.sleep(args.warm)
        begin = time.monotonic()
        time.sleep(args.seconds)
        end = time.monotonic()
        reads = sum(1 for phase, t in load.reads if phase == (name, r) and begin <= t <= end)
        latencies = [lat for phase, t, lat in load.writes if phase == (name, r) and begin <= t <= end]
        out[f"{name}/{r}"] = {"rps": reads / (end - begin), "write_latencies": latencies}
    load.phase = ("idle", -1)
    return out


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--node-cpus", type=float, default=0.5, help="CPU quota of each PostgreSQL node")
    p.add_argument("--clients", type=int, default=8, help="reader threads")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=5.0, help="measured window per configuration")
    p.add_argument("--warm", type=float, default=1.5, help="seconds before each window")
    p.add_argument("--write-rate", type=float, default=40.0, help="writes per second in the latency phase")
    args = common.parse(p)
    if args.quick:
        args.rows, args.clients, args.rounds, args.seconds, args.warm = 2_000, 2, 1, 0.5, 0.3
    from bench import cpulimit

    figures = common.Figures("b3", args)
    with common.running_cluster(args) as cluster:
        common.start_django(cluster)
        figures.add("b3_rows", common.ensure_gists(cluster, args.rows))
        override: list[Any] = []
        with cpulimit.limited(cluster, args.node_cpus) as limit:
            figures.add("b3_cpu_limit", f"{limit.method} {limit.setting}")
            for node, where in limit.where.items():
                figures.add(f"b3_cgroup_{node}", where)
            load = Load(args.clients)
            try:
                apply = lambda name: configure(name, override)  # noqa: E731
                reads = measure(load, list(common.abba(CONFIGS, args.rounds)), args, apply)
            finally:
                load.close()
            load_w = Load(args.clients, args.write_rate)
            try:
                sides = ["primary", "2_replicas"]
                writes = measure(load_w, list(common.abba(sides, args.rounds)), args, apply)
            finally:
                load_w.close()
                configure("2_replicas", override)
            throttled = limit.throttled()
    report(figures, args, reads, writes, throttled, load.errors + load_w.errors)


def report(figures: common.Figures, args: Any, reads: dict, writes: dict, throttled: dict, errors: list[str]) -> None:
    rounds = range(args.rounds)
    rps = {c: [reads[f"{c}/{r}"]["rps"] for r in rounds] for c in CONFIGS}
    for config in CONFIGS:
        figures.add(f"b3_reads_per_second_{config}", common.median(rps[config]), 1)
        figures.add(f"b3_reads_per_second_{config}_by_round", " ".join(f"{x:.1f}" for x in rps[config]))
    scaling = {c: common.median([rps[c][r] / rps["primary"][r] for r in rounds]) for c in CONFIGS[1:]}
    figures.add("b3_read_scaling_1_replica", scaling["1_replica"], 2)
    figures.add("b3_read_scaling_2_replicas", scaling["2_replicas"], 2)
    latency = {}
    for side, label in (("primary", "reads_on_primary"), ("2_replicas", "reads_offloaded")):
        p50 = [common.percentile(writes[f"{side}/{r}"]["write_latencies"], 50) * 1000 for r in rounds]
        p99 = [common.percentile(writes[f"{side}/{r}"]["write_latencies"], 99) * 1000 for r in rounds]
        latency[label] = (common.median(p50), common.median(p99))
        figures.add(f"b3_write_p50_ms_{label}", latency[label][0], 2)
        figures.add(f"b3_write_p99_ms_{label}", latency[label][1], 2)
        figures.add(
            f"b3_reads_per_second_during_writes_{label}",
            common.median([writes[f"{side}/{r}"]["rps"] for r in rounds]),
            1,
        )
    figures.add(
        "b3_write_p99_ratio_offloaded_vs_not", latency["reads_offloaded"][1] / latency["reads_on_primary"][1], 3
    )
    for node, share in throttled.items():
        figures.add(f"b3_throttled_period_share_{node}", share, 3)
    figures.add("b3_read_errors", len(errors))
    figures.add("b3_clients", args.clients)
    figures.add("b3_node_cpus", args.node_cpus)

    def draw_reads(ax: Any) -> None:
        bars = ax.bar(
            ["primary alone", "1 replica", "2 replicas"],
            [common.median(rps[c]) for c in CONFIGS],
            color=["#999", "#69c", "#369"],
        )
        ax.bar_label(
            bars, labels=["1.00x", f"{scaling['1_replica']:.2f}x", f"{scaling['2_replicas']:.2f}x"], fontsize=8
        )
        ax.set_ylabel("nearby searches per second (median)")

    def draw_writes(ax: Any) -> None:
        labels = list(latency)
        for i, (q, color) in enumerate((("p50", "#69c"), ("p99", "#c63"))):
            bars = ax.bar(
                [j + (i - 0.5) * 0.38 for j in range(2)], [latency[s][i] for s in labels], 0.38, label=q, color=color
            )
            ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(range(2), ["reads on the primary", "reads offloaded to replicas"])
        ax.set_ylabel("write latency on the primary (ms)")
        ax.legend(fontsize=8)

    figures.plot("b3-read-scaling", draw_reads, f"B3 reads per second, each node at {args.node_cpus} CPU")
    figures.plot(
        "b3-write-latency", draw_writes, f"B3 write latency under {args.write_rate:.0f} writes/s and the read load"
    )
    if errors:
        print(f"b3: first read error: {errors[0]}", file=sys.stderr)
    figures.save()


if __name__ == "__main__":
    main()
