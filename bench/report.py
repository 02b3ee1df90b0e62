"""Write ``docs/benchmarks.md`` from the figures the scripts saved (``common.Figures.save``).

    .venv/bin/python bench/report.py [--results-dir .pgdata/bench-results] [--output docs/benchmarks.md]

Each script also calls this when it finishes, so the page always shows the latest run of each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

# (figure, goal as text, test) for the summary: a test of None means "for the record".
GOALS: list[tuple[str, str, Any]] = [
    ("b1_route_cost_ratio_vs_multidb", "≤ 1.5", lambda v: v <= 1.5),
    ("b2_request_ratio_vs_no_router", "≥ 0.97", lambda v: v >= 0.97),
    ("b3_read_scaling_2_replicas", "≥ 1.9 (limit 2)", lambda v: v >= 1.9),
    ("b3_read_scaling_1_replica", "≈ 1 (only replicas serve reads)", None),
    ("b3_write_p99_ms_reads_on_primary", "for the record", None),
    ("b3_write_p99_ms_reads_offloaded", "lower than with reads on the primary", None),
    ("b4_lag_exclusion_seconds", "for the record (≤ 0: out before the tolerance is passed)", None),
    ("b4_lag_reads_beyond_tolerance", "0", lambda v: v == 0),
    ("b4_kill9_routing_away_seconds", "for the record", None),
    ("b4_kill9_failed_reads", "0", lambda v: v == 0),
    ("b4_kill9_failed_reads_multidb", "for the record", None),
    ("b4_readmission_seconds", "for the record", None),
    ("b4_measuring_process_role", "follower (not the host's prober)", lambda v: v == "follower"),
    ("b5_probes_per_second_at_1_rps", "1 / CHECK_INTERVAL_SECONDS", None),
    ("b5_probes_per_second_at_1000_rps", "flat: 1 / CHECK_INTERVAL_SECONDS (± 10 %)", "b5"),
    ("b6_replica_share_after_write", "more than the 15 s time pin's", "b6"),
    ("b6_replica_share_with_15s_time_pin", "for the record", None),
    ("b6_stale_reads", "0", lambda v: v == 0),
    ("b7_probe_sessions_per_node_16_procs", "1 (one prober per host)", lambda v: v == 1),
    ("b7_probe_sessions_per_node_16_procs_process_mode", "for the record (16: one per process)", None),
    ("b7_probe_qps_per_node_16_procs", "one prober's rate, flat in the process count (± 10 %)", "b7"),
    ("b7_probe_qps_per_node_16_procs_process_mode", "for the record", None),
    ("b8_write_p99_burst_vs_calm_least_lagged", "≤ 1.5 (write p99 in the burst / without it)", lambda v: v <= 1.5),
    ("b8_write_p99_burst_vs_calm_primary", "for the record", None),
    ("b8_reads_beyond_hard_ceiling_least_lagged", "0", lambda v: v == 0),
    ("b8_read_errors", "0", lambda v: v == 0),
    ("b8_catch_up_ratio_least_lagged_vs_primary", '≤ 1 (catch-up no slower than with "primary")', lambda v: v <= 1.0),
    ("b8_primary_cpu_share_burst_primary", "for the record", None),
    ("b8_primary_cpu_share_burst_least_lagged", "for the record", None),
]

SECTIONS = [
    ("b1", "B1 — routing cost", "route_cost.py"),
    ("b2", "B2 — request overhead", "request_overhead.py"),
    ("b3", "B3 — read scaling with replicas", "read_scaling.py"),
    ("b4", "B4 — detection", "detection.py"),
    ("b5", "B5 — probe cost", "probe_cost.py"),
    ("b6", "B6 — read-your-writes", "read_your_writes.py"),
    ("b7", "B7 — probe cost per host", "probe_fleet.py"),
    ("b8", "B8 — every replica behind at once", "all_behind.py"),
    ("queries", "Query latency (nearby, deep pages)", "nearby_100k.py"),
]


def machine() -> dict[str, str]:
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kb = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal")), 0)
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line), "?")
    try:
        postgres = subprocess.run(
            ["pg_config", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        postgres = "?"

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "?"

    return {
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "cpu": model,
        "kernel": platform.release(),
        "software": f"Python {platform.python_version()}, Django {version('Django')}, {postgres}, "
        f"django-multidb-router {version('django-multidb-router')}, matplotlib {version('matplotlib')}",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def verdict(name: str, test: Any, figures: dict[str, Any]) -> str:
    value = figures.get(name)
    if value is None or test is None:
        return "—" if value is None else "for the record"
    if test == "b5":
        expected = figures.get("b5_expected_probes_per_second", 2.0)
        flat = figures.get("b5_probe_rate_spread", 99) <= 1.1
        return "met" if abs(value - expected) <= 0.1 * expected and flat else "**not met**"
    if test == "b7":
        expected = figures.get("b7_expected_qps_one_prober", 2.0)
        return "met" if abs(value - expected) <= 0.1 * expected else "**not met**"
    if test == "b6":
        return "met" if value > figures.get("b6_replica_share_with_15s_time_pin", 1) else "**not met**"
    return "met" if test(value) else "**not met**"


def write(results_dir: Path, output: Path) -> None:
    results = {}
    for key, _, _ in SECTIONS:
        path = results_dir / f"{key}.json"
        if path.exists():
            results[key] = json.loads(path.read_text())
    run = json.loads((results_dir / "run.json").read_text()) if (results_dir / "run.json").exists() else {}
    every = {name: value for r in results.values() for name, value in r["figures"].items()}
    info = machine()
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/report.py` from the figures of the scripts in `bench/` (do not edit by hand).",
        f"Produced by `{run.get('command', 'the scripts below, one at a time')}`"
        + (f" in {run['seconds'] / 60:.1f} min, finished {run['finished']}." if "seconds" in run else "."),
        "",
        f"Machine: {info['cores']} cores ({info['cpu']}), {info['memory']} of memory, Linux {info['kernel']}; "
        f"{info['software']}. Load average when this page was written: {info['load']} — other engineers' "
        "test suites share this machine, so every comparison below is a ratio measured side by side in one "
        "run, alternating the sides (A B, B A, ...), repeated, and the median taken.",
        "",
        "Every script runs on a PostgreSQL cluster of its own (a primary and 2 streaming replicas, "
        "`scripts/pgcluster.py`, ports 25632-25634 by default, `.pgdata/bench-<port>/`), never on the "
        "developer cluster. `make bench` runs them all; each prints `name=value` lines.",
        "",
        "## Summary",
        "",
        "| Figure | Value | Goal | |",
        "|---|---|---|---|",
    ]
    for name, goal, test in GOALS:
        lines.append(f"| `{name}` | {every.get(name, '—')} | {goal} | {verdict(name, test, every)} |")
    for key, title, script in SECTIONS:
        if key not in results:
            continue
        r = results[key]
        doc = _docstring(Path(__file__).parent / script)
        lines += ["", f"## {title}", "", f"`{r.get('command', script)}` — finished {r['finished']}, {r['seconds']} s."]
        lines += ["", doc, *_reading(key, r["figures"]), "", "| Figure | Value |", "|---|---|"]
        lines += [f"| `{name}` | {_cell(value)} |" for name, value in r["figures"].items()]
        lines += [""] + [f"![{plot}]({plot})" for plot in r["plots"]]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines).rstrip() + "\n")


def _reading(key: str, f: dict[str, Any]) -> list[str]:
    """What the figures of a section say, computed from them (so never out of date)."""
    if key == "b1" and "b1_route_ns_dbrouting_own_tolerance" in f:
        return [
            "",
            f"**Reading.** In the common case ours costs {f['b1_route_ns_dbrouting']:.0f} ns a call, "
            f"multidb's `ReplicaRouter` {f['b1_route_ns_multidb']:.0f} ns (it only does "
            "`next(itertools.cycle(...))`): the calls are the reads of one routing scope (one request), which "
            "stays on its replica while that replica is usable; each read checks that no routing block, pin, "
            "unsafe method or transaction applies, reads the usable replicas the health snapshot keeps for the "
            "default tolerance and until when they hold (a clock read), and counts the read in the scope. "
            f"Inside a `max_staleness()` block the usable replicas are worked out anew at every call: "
            f"{f['b1_route_ns_dbrouting_own_tolerance']:.0f} ns. That is "
            f"{f['b1_route_overhead_ns_vs_no_router']:.0f} ns more per read than no router in the common case; "
            "B2 shows what it amounts to in a whole request.",
        ]
    if key == "b3" and "b3_throttled_period_share_replica1" in f:
        shares = ", ".join(
            f"{n} {f[f'b3_throttled_period_share_{n}']:.0%}" for n in ("primary", "replica1", "replica2")
        )
        return ["", f"**Reading.** Share of scheduler periods in which each node hit its quota: {shares}."]
    return []


def _docstring(path: Path) -> str:
    """A script's module docstring, past its first paragraph's command line."""
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraphs = doc.split("\n\n")
    return "\n\n".join(p for p in paragraphs[1:] if not p.startswith("    ")).replace("``", "`")


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def main() -> None:
    from bench.common import DOCS_DIR, RESULTS_DIR

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--output", type=Path, default=DOCS_DIR / "benchmarks.md")
    args = p.parse_args()
    write(args.results_dir, args.output)
    print(f"bench: wrote {args.output} ({time.strftime('%H:%M:%S')})", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
