"""B8 every replica behind at once: what each ALL_BEHIND_POLICY costs the primary and the readers.

    .venv/bin/python bench/all_behind.py [--burst 20] [--calm 8] [--clients 6] [--node-cpus 0.5] [--rounds 1]

Each PostgreSQL node gets the same CPU quota as in B3 (``bench/cpulimit.py``). A steady load runs
throughout: ``--clients`` threads of nearby searches (each a routing scope of its own, as a
request is) and a writer creating ``--write-rate`` gists a second, whose latency is measured. For
each policy in turn (``primary``, ``least_lagged``, ``budget`` with ``PRIMARY_READ_BUDGET``
``--budget``; the order reversed every other round):

1. calm: ``--calm`` seconds, every replica within the tolerance: write p99 without the burst;
2. burst: both replicas' replay paused (as a replay conflict, or replay that cannot keep up,
   holds it) while a bulk writer adds ``--burst-rows`` gists a second on the primary; once both
   are past the tolerance, ``--burst`` seconds are measured: the primary's share of the nodes'
   CPU time, read and write p99, the share of searches served stale, the largest staleness
   served, reads beyond ``MAX_STALENESS_HARD_SECONDS``, read errors;
3. catch-up: replay resumed and the bulk writer stopped: seconds until both replicas have
   replayed the primary's position at that moment (asked of each replica every 10 ms), and
   until the router finds both within the tolerance again (a probe round or two later).

A calm phase of the same length runs first and is not counted (a cold primary's first seconds).
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import psycopg

from bench import common

POLICIES = ["primary", "least_lagged", "budget"]
RADIUS_M, LIMIT = 2_000.0, 100
TOLERANCE, HARD = 2.0, 60.0


class Load:
    """Searches and paced writes, each tagged with the phase in which it completed."""

    def __init__(self, clients: int, write_rate: float) -> None:
        self.phase: tuple[str, ...] = ("idle",)
        self.reads: list[tuple[tuple[str, ...], float, bool, bool, float]] = []  # phase, s, stale, primary, staleness
        self.writes: list[tuple[tuple[str, ...], float]] = []
        self.errors: list[str] = []
        self.bulk = threading.Event()
        self.bulk_rows = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.reader, args=(i,), daemon=True) for i in range(clients)]
        self.threads.append(threading.Thread(target=self.writer, args=(write_rate,), daemon=True))
        self.threads.append(threading.Thread(target=self.bulk_writer, daemon=True))
        for thread in self.threads:
            thread.start()

    def reader(self, seed: int) -> None:
        from django.db import connections

        from dbrouting import routing_scope
        from dbrouting.context import current_state
        from gists import geo
        from gists.models import Gist

        rng = random.Random(seed)  # noqa: S311 (search points, not secrets)
        while not self.stop.is_set():
            lat, lng = rng.choice(common.CITIES)
            phase, start = self.phase, time.monotonic()
            try:
                with routing_scope():
                    found = geo.nearby(Gist.objects.all(), lat + rng.uniform(-0.1, 0.1), lng + rng.uniform(-0.1, 0.1),
                                       RADIUS_M, LIMIT)  # fmt: skip
                    list(found)
                    state = current_state()
                    reasons = {reason for _, reason in state.tally()}
                    on_primary = any(alias == "default" for alias, _ in state.tally())
                    self.reads.append((phase, time.monotonic() - start, "stale" in reasons, on_primary,
                                       state.stale_seconds or 0.0))  # fmt: skip
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        connections.close_all()

    def writer(self, rate: float) -> None:
        from django.db import connections

        from gists.models import Gist

        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += 1 / rate
            phase, start = self.phase, time.monotonic()
            Gist.objects.create(title="write", content="latency probe", latitude=10.0, longitude=10.0)
            self.writes.append((phase, time.monotonic() - start))
            time.sleep(max(0.0, next_at - time.monotonic()))
        connections.close_all()

    def bulk_writer(self) -> None:
        """While ``bulk`` is set: ``bulk_rows`` gists a second, in batches of a tenth of that."""
        from django.db import connections

        from gists.models import Gist

        while not self.stop.is_set():
            if not self.bulk.wait(0.1):
                continue
            batch, started = max(1, self.bulk_rows // 10), time.monotonic()
            Gist.objects.bulk_create(
                Gist(title="bulk", content="a backfill row " * 8, latitude=20.0, longitude=20.0) for _ in range(batch)
            )
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
        connections.close_all()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def run_policy(policy: str, r: int, load: Load, cluster: Any, limit: Any, args: Any) -> dict[str, Any]:
    from django.conf import settings
    from django.test import override_settings

    from bench import cpulimit
    from dbrouting import probe, replica_health

    def behind() -> bool:
        return all(replica_health()[a].state == "lagging" for a in ("replica1", "replica2"))

    dbrouting = {**settings.DBROUTING, "MAX_STALENESS_SECONDS": TOLERANCE, "MAX_STALENESS_HARD_SECONDS": HARD,
                 "ALL_BEHIND_POLICY": policy, "PRIMARY_READ_BUDGET": args.budget}  # fmt: skip
    with override_settings(DBROUTING=dbrouting):
        common.wait_until_usable()
        load.phase = ("calm", policy, str(r))
        time.sleep(args.calm)
        for node in ("replica1", "replica2"):
            cluster.psql(cluster.node(node), "SELECT pg_wal_replay_pause()")
        load.bulk_rows = args.burst_rows
        load.bulk.set()
        wait(behind, 30 + TOLERANCE, "both replicas past the tolerance")
        load.phase = ("burst", policy, str(r))
        cpu_before = cpulimit.cpu_seconds(cluster, limit)
        time.sleep(args.burst)
        cpu = {n: s - cpu_before[n] for n, s in cpulimit.cpu_seconds(cluster, limit).items()}
        load.phase = ("catch-up", policy, str(r))
        load.bulk.clear()
        with contextlib.ExitStack() as stack:
            nodes = {a: stack.enter_context(psycopg.connect(autocommit=True, **probe.connection_params(a, 2)))
                     for a in ("replica1", "replica2")}  # fmt: skip
            target = cluster.psql(cluster.primary, "SELECT pg_current_wal_lsn()")
            resumed = time.monotonic()
            for alias in ("replica1", "replica2"):
                cluster.psql(cluster.node(alias), "SELECT pg_wal_replay_resume()")
            waiting = {"replica1", "replica2"}
            while waiting:
                if time.monotonic() - resumed > 120:
                    raise SystemExit("bench: the replicas did not catch up in 120 s")
                sql = "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
                waiting = {a for a in waiting if not nodes[a].execute(sql, (target,)).fetchone()[0]}  # type: ignore[index]
                time.sleep(0.01)
            replayed = time.monotonic() - resumed
        wait(lambda: all(replica_health()[a].state == "ok" for a in ("replica1", "replica2")), 120, "catch-up")
        back = time.monotonic() - resumed
    return {"cpu": cpu, "catch_up": replayed, "back_in_service": back}


def wait(condition: Any, timeout: float, what: str) -> None:
    from dbrouting.health import cache

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} not reached in {timeout:.0f} s")
        cache.wait_for_rounds(1)


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--node-cpus", type=float, default=0.5, help="CPU quota of each PostgreSQL node")
    p.add_argument("--clients", type=int, default=6, help="reader threads")
    p.add_argument("--write-rate", type=float, default=20.0, help="paced writes per second (latency measured)")
    p.add_argument("--burst-rows", type=int, default=500, help="gists a second the bulk writer adds in the burst")
    p.add_argument("--burst", type=float, default=20.0, help="seconds measured with both replicas past the tolerance")
    p.add_argument("--calm", type=float, default=8.0, help="seconds measured before the burst")
    p.add_argument("--budget", type=float, default=20.0, help="PRIMARY_READ_BUDGET of the budget policy")
    p.add_argument("--rounds", type=int, default=2, help="each policy once a round, the order reversed every other")
    args = common.parse(p)
    if args.quick:
        args.rows, args.clients, args.burst, args.calm, args.burst_rows, args.rounds = 2_000, 2, 1.0, 0.5, 50, 1
    from bench import cpulimit

    figures = common.Figures("b8", args)
    with common.running_cluster(args) as cluster:
        common.start_django(cluster)
        figures.add("b8_rows", common.ensure_gists(cluster, args.rows))
        with cpulimit.limited(cluster, args.node_cpus) as limit:
            figures.add("b8_cpu_limit", f"{limit.method} {limit.setting}")
            load = Load(args.clients, args.write_rate)
            runs: dict[tuple[str, int], dict[str, Any]] = {}
            try:
                load.phase = ("warm-up",)
                time.sleep(args.calm)
                for r, policy in common.abba(POLICIES, args.rounds):
                    runs[policy, r] = run_policy(policy, r, load, cluster, limit, args)
            finally:
                load.close()
                for node in ("replica1", "replica2"):
                    cluster.psql(cluster.node(node), "SELECT pg_wal_replay_resume()")
    report(figures, args, load, runs)


def report(figures: common.Figures, args: Any, load: Load, runs: dict[tuple[str, int], dict[str, Any]]) -> None:
    rows: dict[str, dict[str, float]] = {}
    for policy in POLICIES:
        out: dict[str, list[float]] = {}
        for r in range(args.rounds):
            calm, burst = ("calm", policy, str(r)), ("burst", policy, str(r))
            reads = [x for x in load.reads if x[0] == burst]
            cpu = runs[policy, r]["cpu"]
            figures_of = {
                "write_p99_ms_calm": common.percentile([s for ph, s in load.writes if ph == calm], 99) * 1000,
                "write_p99_ms_burst": common.percentile([s for ph, s in load.writes if ph == burst], 99) * 1000,
                "read_p99_ms_burst": common.percentile([x[1] for x in reads], 99) * 1000,
                "stale_share_burst": sum(x[2] for x in reads) / max(1, len(reads)),
                "primary_read_share_burst": sum(x[3] for x in reads) / max(1, len(reads)),
                "max_staleness_served_s": max((x[4] for x in reads), default=0.0),
                "reads_beyond_hard_ceiling": float(sum(x[4] > HARD for x in reads)),
                "reads_per_second_burst": len(reads) / args.burst,
                "primary_cpu_share_burst": cpu["primary"] / max(1e-9, sum(cpu.values())),
                "catch_up_seconds": runs[policy, r]["catch_up"],
                "back_in_service_seconds": runs[policy, r]["back_in_service"],
            }
            for name, value in figures_of.items():
                out.setdefault(name, []).append(value)
        rows[policy] = {name: common.median(values) for name, values in out.items()}
        for name, value in rows[policy].items():
            figures.add(f"b8_{name}_{policy}", value, 3)
        calm_p99, burst_p99 = rows[policy]["write_p99_ms_calm"], rows[policy]["write_p99_ms_burst"]
        figures.add(f"b8_write_p99_burst_vs_calm_{policy}", burst_p99 / calm_p99, 2)
    figures.add("b8_catch_up_ratio_least_lagged_vs_primary",
                rows["least_lagged"]["catch_up_seconds"] / rows["primary"]["catch_up_seconds"], 2)  # fmt: skip
    figures.add("b8_read_errors", len(load.errors))
    for name in ("clients", "write_rate", "burst_rows", "burst", "calm", "budget", "node_cpus", "rounds"):
        figures.add(f"b8_{name}", getattr(args, name))
    figures.add("b8_tolerance_seconds", TOLERANCE)
    figures.add("b8_hard_ceiling_seconds", HARD)

    def draw(ax: Any) -> None:
        metrics = [("write p99 calm (ms)", "write_p99_ms_calm"), ("write p99 burst (ms)", "write_p99_ms_burst"),
                   ("read p99 burst (ms)", "read_p99_ms_burst"), ("primary CPU % burst", "primary_cpu_share_burst"),
                   ("stale reads % burst", "stale_share_burst"), ("catch-up (ms)", "catch_up_seconds")]  # fmt: skip
        width = 0.8 / len(POLICIES)
        for i, (policy, color) in enumerate(zip(POLICIES, ("#999", "#369", "#c96"), strict=True)):
            values = [
                rows[policy][key] * (100 if "share" in key else 1000 if "seconds" in key else 1) for _, key in metrics
            ]
            bars = ax.bar([j + (i - 1) * width for j in range(len(metrics))], values, width, label=policy, color=color)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks(range(len(metrics)), [label for label, _ in metrics], fontsize=7)
        ax.legend(fontsize=8)

    figures.plot("b8-all-behind", draw, f"B8 both replicas behind for {args.burst:.0f} s, by ALL_BEHIND_POLICY",
                 size=(10, 4))  # fmt: skip
    if load.errors:
        print(f"b8: first read error: {load.errors[0]}", file=sys.stderr)
    figures.save()


if __name__ == "__main__":
    main()
