"""B5 probe cost: health probes per second per replica at 1, 100 and 1,000 reads per second.

    .venv/bin/python bench/probe_cost.py [--seconds 8] [--rounds 2] [--quick]

One process (the project's settings, ``CHECK_INTERVAL_SECONDS`` 0.5) reads through the router
at a paced rate from two threads, each read in a fresh routing scope as a request would.
Probes are counted by the router's own ``dbrouting_probe_duration_seconds_count`` (one sample
per probe). On each replica's server, the sessions opened over the window
(``pg_stat_database.sessions``; the readers' connections are open before it) show what probing
costs the server: one per probe for a prober that connects each time, none for one that keeps
its connection (``b5_probe_connections_per_replica``: the prober's sessions open at the end,
``application_name = 'dbrouting-probe'``). The goal is flat: 1 / ``CHECK_INTERVAL_SECONDS``
per replica per process, whatever the read rate. Rates alternate (A B C, C B A); figures are
medians.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

RATES = [1, 100, 1000]
REPLICAS = ["replica1", "replica2"]


class Readers:
    """Reader threads that live across windows (their connections stay open, as a server's do)."""

    def __init__(self, threads: int = 2) -> None:
        self.jobs: list[queue.Queue[tuple[float, float, float] | None]] = [queue.Queue() for _ in range(threads)]
        self.done: queue.Queue[int] = queue.Queue()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def run(self, index: int) -> None:
        from django.db import connections

        from dbrouting import routing_scope
        from gists.models import Gist

        while (job := self.jobs[index].get()) is not None:
            rate, start, seconds = job
            count, at = 0, start + index / rate
            while at < start + seconds:
                time.sleep(max(0.0, at - time.monotonic()))
                with routing_scope():
                    Gist.objects.values_list("id", flat=True).first()
                count += 1
                at += len(self.threads) / rate
            self.done.put(count)
        connections.close_all()

    def paced(self, rate: float, seconds: float) -> float:
        """Read through the router at ``rate`` per second for ``seconds``: reads per second done."""
        start = time.monotonic()
        for jobs in self.jobs:
            jobs.put((rate, start, seconds))
        reads = sum(self.done.get() for _ in self.jobs)
        time.sleep(max(0.0, start + seconds - time.monotonic()))
        return reads / (time.monotonic() - start)

    def close(self) -> None:
        for jobs in self.jobs:
            jobs.put(None)
        for thread in self.threads:
            thread.join(timeout=30)


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--seconds", type=float, default=8.0, help="window per rate per round")
    p.add_argument("--rounds", type=int, default=2)
    args = common.parse(p)
    if args.quick:
        args.seconds, args.rounds = 0.5, 1
    figures = common.Figures("b5", args)
    with common.running_cluster(args) as cluster:
        common.start_django(cluster)
        from prometheus_client import REGISTRY

        from dbrouting.conf import get_config

        common.ensure_gists(cluster, 100)
        common.wait_until_usable()
        interval = get_config().check_interval_seconds

        def probes(alias: str) -> float:
            return REGISTRY.get_sample_value("dbrouting_probe_duration_seconds_count", {"alias": alias}) or 0.0

        def sessions(alias: str) -> int:
            sql = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            return int(cluster.psql(cluster.node(alias), sql, database="gists"))

        readers = Readers()
        readers.paced(50, 0.5)  # warm: the readers' connections open now, not in a window
        samples: dict[int, list[dict[str, float]]] = {rate: [] for rate in RATES}
        for _, rate in common.abba(RATES, args.rounds):
            before = {a: (probes(a), sessions(a)) for a in REPLICAS}
            start = time.monotonic()
            sample = {"reads_per_second": readers.paced(rate, args.seconds)}
            elapsed = time.monotonic() - start
            for a in REPLICAS:
                sample[f"probes_{a}"] = (probes(a) - before[a][0]) / elapsed
                # minus the one session of the psql that read the counter before the window
                sample[f"sessions_{a}"] = (sessions(a) - before[a][1] - 1) / elapsed
            samples[rate].append(sample)
        readers.close()
        sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbrouting-probe'"
        kept = common.median([int(cluster.psql(cluster.node(a), sql)) for a in REPLICAS])

    def med(rate: int, key: str) -> float:
        return common.median([s[key] for s in samples[rate]])

    figures.add("b5_check_interval_seconds", interval)
    figures.add("b5_expected_probes_per_second", 1 / interval)
    per_rate = {}
    for rate in RATES:
        per_rate[rate] = common.median([med(rate, f"probes_{a}") for a in REPLICAS])
        figures.add(f"b5_probes_per_second_at_{rate}_rps", per_rate[rate], 2)
        figures.add(f"b5_reads_per_second_achieved_at_{rate}_rps", med(rate, "reads_per_second"), 1)
        figures.add(
            f"b5_server_sessions_per_second_at_{rate}_rps",
            common.median([med(rate, f"sessions_{a}") for a in REPLICAS]),
            2,
        )
    figures.add("b5_probe_rate_spread", max(per_rate.values()) / min(per_rate.values()), 3)
    figures.add("b5_probe_connections_per_replica", kept)

    def draw(ax: Any) -> None:
        for a, color in zip(REPLICAS, ("#369", "#69c"), strict=True):
            ax.plot(
                RATES, [med(rate, f"probes_{a}") for rate in RATES], "o-", color=color, label=f"{a}: probes (metric)"
            )
            ax.plot(
                RATES,
                [med(rate, f"sessions_{a}") for rate in RATES],
                "x:",
                color=color,
                label=f"{a}: sessions (server)",
            )
        ax.axhline(1 / interval, color="#999", ls="--", lw=0.8, label="1 / CHECK_INTERVAL_SECONDS")
        ax.set_xscale("log")
        ax.set_ylim(0, 2.5 / interval)
        ax.set_xlabel("reads per second through the router (one process)")
        ax.set_ylabel("probes per second per replica")
        ax.legend(fontsize=7)

    figures.plot("b5-probe-cost", draw, "B5 probe rate does not follow the read rate")
    figures.save()


if __name__ == "__main__":
    main()
