"""``make bench``: every benchmark in turn, on one cluster of their own, then ``docs/benchmarks.md``.

    .venv/bin/python bench/run_all.py [--quick] [--only b1,b4] [--port-base 25632] [--keep-cluster]

Creates the cluster (a primary and 2 replicas on ``--port-base`` and the next ports, under
``.pgdata/bench-<port>/``), runs each script on it (each prints its ``name=value`` lines and
saves them), writes the page and the plots (``docs/``, or a temporary folder with ``--quick``),
and destroys the cluster. Exits non-zero if any script failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common, report

# B2 loads the 200,000 gists that B3 reads; the query-latency script works in a database of its own.
SCRIPTS = {
    "b1": "route_cost.py",
    "b2": "request_overhead.py",
    "b3": "read_scaling.py",
    "b4": "detection.py",
    "b5": "probe_cost.py",
    "b6": "read_your_writes.py",
    "b7": "probe_fleet.py",
    "b8": "all_behind.py",
    "queries": "nearby_100k.py",
}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--only", default=",".join(SCRIPTS), help="comma-separated: " + ",".join(SCRIPTS))
    args = common.parse(p)
    chosen = [key for key in args.only.split(",") if key]
    unknown = set(chosen) - set(SCRIPTS)
    if unknown:
        p.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    command = "make bench" if os.environ.get("MAKELEVEL") and not args.quick else " ".join(sys.argv)
    started = time.monotonic()
    failed = []
    with common.running_cluster(args) as cluster:
        print(f"bench: cluster on 127.0.0.1:{cluster.port_base}-{cluster.port_base + 2} in {cluster.base_dir}")
        for key in chosen:
            (args.results_dir / f"{key}.json").unlink(missing_ok=True)
            print(f"bench: --- {key}: bench/{SCRIPTS[key]}", flush=True)
            argv = [sys.executable, str(Path(__file__).parent / SCRIPTS[key]), *args.forward, "--keep-cluster"]
            argv += ["--no-report", "--out-dir", str(args.out_dir), "--results-dir", str(args.results_dir)]
            if subprocess.run(argv, cwd=common.ROOT, check=False).returncode != 0:
                failed.append(key)
    seconds = time.monotonic() - started
    run = {"command": command, "seconds": seconds, "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "run.json").write_text(json.dumps(run))
    output = (args.out_dir if args.quick else common.DOCS_DIR) / "benchmarks.md"
    report.write(args.results_dir, output)
    print(f"bench: wrote {output}")
    print(f"bench_total_seconds={seconds:.1f}")
    if failed:
        raise SystemExit(f"bench: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
