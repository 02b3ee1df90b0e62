"""bench/ at a tiny size: every script runs, prints its figures and draws its plots.

A smoke test only: no timing is asserted. ``bench/run_all.py --quick`` works on a scratch
cluster of its own (the first free block of ports from 25732, under ``.pgdata/bench-<port>``),
which it creates and destroys; it kills and restarts a node of that cluster (B4), never of the
developer cluster, hence the ``cluster`` mark.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgcluster import Cluster, _port_in_use

ROOT = Path(__file__).resolve().parent.parent
FIRST_PORT_BASE = 25732

# The figures the benchmarks issue promises, by name.
REQUIRED = [
    "b1_route_cost_ratio_vs_multidb",
    "b2_request_ratio_vs_no_router",
    "b3_read_scaling_2_replicas",
    "b3_read_scaling_1_replica",
    "b4_lag_exclusion_seconds",
    "b4_kill9_failed_reads",
    "b4_kill9_failed_reads_multidb",
    "b4_readmission_seconds",
    "b4_measuring_process_role",
    "b5_probes_per_second_at_1000_rps",
    "b6_replica_share_after_write",
    "b6_stale_reads",
    "b7_probe_sessions_per_node_4_procs",
    "b7_probe_qps_per_node_4_procs",
    "b7_probe_qps_per_node_4_procs_process_mode",
    "b8_write_p99_burst_vs_calm_least_lagged",
    "b8_stale_share_burst_least_lagged",
    "b8_catch_up_ratio_least_lagged_vs_primary",
]
PLOTS = ["b1-route-cost", "b2-request-overhead", "b3-read-scaling", "b3-write-latency", "b4-kill9", "b5-probe-cost"]
PLOTS += ["b6-read-your-writes", "b7-probe-fleet", "b8-all-behind"]


@pytest.fixture
def port_base() -> Iterator[int]:
    """A block of 3 free ports, locked against a concurrent run of this test on the machine."""
    for base in range(FIRST_PORT_BASE, FIRST_PORT_BASE + 200, 10):
        lock = open(Path(tempfile.gettempdir()) / f"bench-smoke-{base}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        if not any(_port_in_use(base + i) for i in range(3)):
            try:
                yield base
            finally:
                Cluster(base_dir=ROOT / ".pgdata" / f"bench-{base}", port_base=base).destroy(log=False)
                lock.close()
            return
        lock.close()
    pytest.fail("no free block of 3 ports from 25732")


@pytest.mark.cluster
def test_bench__every_script_runs_at_a_tiny_size(port_base: int, tmp_path: Path) -> None:
    pytest.importorskip("multidb", reason="requirements-bench.txt is not installed (make bench-deps)")
    pytest.importorskip("matplotlib", reason="requirements-bench.txt is not installed (make bench-deps)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "PGCLUSTER_"))}
    command = [sys.executable, "bench/run_all.py", "--quick", "--port-base", str(port_base), "--out-dir", str(tmp_path)]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=480, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    figures = dict(re.findall(r"^([a-z][a-z0-9_]*)=(.*)$", proc.stdout, re.MULTILINE))
    assert [name for name in REQUIRED if name not in figures] == [], output[-4000:]
    assert figures["b4_measuring_process_role"] == "follower"  # B4 measured where the host's prober is not
    assert figures["b7_probe_sessions_per_node_4_procs"] == "1"
    assert figures["b7_probe_sessions_per_node_4_procs_process_mode"] == "4"
    for plot in PLOTS:
        assert (tmp_path / f"bench-{plot}.png").stat().st_size > 1000, plot
    page = (tmp_path / "benchmarks.md").read_text()
    assert all(f"`{name}`" in page for name in REQUIRED)
    assert not (ROOT / ".pgdata" / f"bench-{port_base}").exists(), "the scratch cluster was left behind"
