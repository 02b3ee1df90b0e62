"""B7 probe cost per host: probe sessions and probe queries each node carries with 1, 4 and 16
app processes on one host, one prober per host (``PROBE_SCOPE`` "host") beside one per process
("process"), in the same run.

    .venv/bin/python bench/probe_fleet.py [--seconds 10] [--quick]

Each process is a Django process of the project's settings (``CHECK_INTERVAL_SECONDS`` 0.5) that
starts its health cache and waits: what an idle gunicorn worker costs the servers. On each node,
``b7_probe_sessions_per_node_<n>_procs`` counts the sessions named ``dbrouting-probe``
(``pg_stat_activity``), and ``b7_probe_qps_per_node_<n>_procs`` the probe queries the node
received per second over the window, summed over the processes from each one's own count
(``dbrouting_probe_duration_seconds_count``, one sample per probe sent; each probe is one
query on its node). PostgreSQL's own counter (``pg_stat_database.xact_commit``) does not see
them in time: an idle session reports its statistics late.
Figures are medians over the nodes; the host mode's carry no suffix, the process mode's end in
``_process_mode``. Configurations run in the order host, process, process, host (per count).
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

COUNTS = [1, 4, 16]
NODES = ["primary", "replica1", "replica2"]
ALIASES = {"primary": "default", "replica1": "replica1", "replica2": "replica2"}


def measure(cluster: Any, count: int, mode: str, seconds: float) -> dict[str, float]:
    """Start ``count`` idle app processes in ``mode``; once each node's probe sessions stop
    changing, count them and the probe queries over ``seconds``."""
    runtime = tempfile.mkdtemp(prefix="b7-")  # mode 700, a plane of this configuration's own
    try:
        with common.idle_app_processes(count, DBROUTING_PROBE_SCOPE=mode, DBROUTING_RUNTIME_DIR=runtime) as procs:
            return _measure(cluster, procs, count, mode, seconds)
    finally:  # once the processes have ended: until then they may still write there
        shutil.rmtree(runtime, ignore_errors=True)


def _measure(cluster: Any, procs: list[Any], count: int, mode: str, seconds: float) -> dict[str, float]:
    def probes_sent() -> dict[str, float]:
        """Every process's probes so far, summed per node."""
        for proc in procs:
            proc.send_signal(signal.SIGUSR1)
        total: dict[str, float] = {}
        for proc in procs:
            assert proc.stdout is not None
            for alias, value in json.loads(proc.stdout.readline()).items():
                total[alias] = total.get(alias, 0.0) + value
        return total

    def sessions(node: str) -> int:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbrouting-probe'"
        return int(cluster.psql(cluster.node(node), sql))

    expected = 1 if mode == "host" else count
    deadline = time.monotonic() + 60 + 3 * count
    while [sessions(n) for n in NODES] != [expected] * len(NODES) and time.monotonic() < deadline:
        time.sleep(0.5)
    before, start = probes_sent(), time.monotonic()
    time.sleep(seconds)
    after, elapsed = probes_sent(), time.monotonic() - start
    qps = [(after.get(ALIASES[n], 0.0) - before.get(ALIASES[n], 0.0)) / elapsed for n in NODES]
    held = [sessions(n) for n in NODES]
    return {"sessions": common.median(held), "qps": common.median(qps)}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--seconds", type=float, default=20.0, help="measuring window per configuration (two halves)")
    args = common.parse(p)
    counts = [1, 4] if args.quick else COUNTS
    if args.quick:
        args.seconds = 6.0
    figures = common.Figures("b7", args)
    results: dict[tuple[str, int], dict[str, float]] = {}
    with common.running_cluster(args) as cluster:
        common.use_cluster(cluster)
        for count in counts:
            for mode in ("host", "process", "process", "host"):
                sample = measure(cluster, count, mode, args.seconds / 2)
                merged = results.setdefault((mode, count), {"sessions": 0.0, "qps": 0.0})
                merged["sessions"] = max(merged["sessions"], sample["sessions"])
                merged["qps"] += sample["qps"] / 2  # two half windows
                print(f"b7: {count} processes, {mode}: {sample}", flush=True)
    interval = 0.5
    for (mode, count), r in sorted(results.items()):
        suffix = "" if mode == "host" else "_process_mode"
        figures.add(f"b7_probe_sessions_per_node_{count}_procs{suffix}", r["sessions"])
        figures.add(f"b7_probe_qps_per_node_{count}_procs{suffix}", r["qps"], 2)
    top = max(counts)
    figures.add("b7_expected_qps_one_prober", 1 / interval, 2)
    figures.add("b7_qps_ratio_host_vs_process_mode", results[("host", top)]["qps"] / results[("process", top)]["qps"])

    def draw(ax: Any) -> None:
        for mode, color in (("host", "#369"), ("process", "#c63")):
            ax.plot(counts, [results[(mode, c)]["qps"] for c in counts], "o-", color=color,
                    label=f"PROBE_SCOPE {mode}: probe queries/s per node")  # fmt: skip
            ax.plot(counts, [results[(mode, c)]["sessions"] for c in counts], "x:", color=color,
                    label=f"PROBE_SCOPE {mode}: probe sessions per node")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_xlabel("app processes on the host")
        ax.set_ylabel("per node")
        ax.legend(fontsize=7)

    figures.plot("b7-probe-fleet", draw, "B7 probe cost per host: flat in the process count with one prober")
    figures.save()


if __name__ == "__main__":
    main()
