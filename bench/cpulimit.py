"""The same fixed CPU quota for every PostgreSQL node, so that one machine models separate hosts.

In order of preference: a cgroup v1 ``cpu`` controller (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``),
a cgroup v2 ``cpu.max``, else ``taskset``-style CPU affinity (``os.sched_setaffinity``: one CPU
per node, round-robin, which bounds a node to one core but is no fraction of one). The
postmaster and its children move into the node's group; the backends it forks later start there.
The groups also get a high scheduling weight (``cpu.shares``/``cpu.weight``), and so does a group
of the load generator's own (no quota), so that on a busy machine the quota, not the competition
with other work, is what bounds each node.
On leaving, every process goes back where the postmaster was and the groups are removed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pgcluster import Cluster, _children

PERIOD_US = 100_000
# A high scheduling weight, so that the quota bounds a node, not the other work on the machine
# (other engineers' test suites): a separate host would have its CPUs to itself.
SHARES, WEIGHT = 8192, 800


@dataclass
class Limit:
    method: str  # "cgroup-v1", "cgroup-v2" or "taskset"
    setting: str  # what each node got, e.g. "cpu.cfs_quota_us=50000 cpu.cfs_period_us=100000"
    where: dict[str, str] = field(default_factory=dict)  # node -> cgroup folder or CPU list
    groups: dict[str, Path] = field(default_factory=dict)

    def throttled(self) -> dict[str, float]:
        """Share of scheduler periods in which each node's group was throttled (cgroups only)."""
        shares = {}
        for name, group in self.groups.items():
            if name == "client":
                continue
            stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
            periods = int(stat.get("nr_periods", 0))
            shares[name] = int(stat.get("nr_throttled", 0)) / periods if periods else 0.0
        return shares


def node_pids(cluster: Cluster, name: str) -> list[int]:
    pid = cluster.pid(cluster.node(name))
    if pid is None:
        raise RuntimeError(f"{name} is not running")
    return [pid, *_children(pid)]


def cpu_seconds(cluster: Cluster, limit: Limit) -> dict[str, float]:
    """CPU time (user + system) each node's processes have used so far: those in its group (a
    backend that exited meanwhile is not counted), or its postmaster's children (taskset)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for node in cluster.nodes:
        group = limit.groups.get(node.name)
        pids = (
            node_pids(cluster, node.name)
            if group is None
            else [int(p) for p in (group / "cgroup.procs").read_text().split()]
        )
        total = 0
        for pid in pids:
            with contextlib.suppress(OSError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        used[node.name] = total / tick
    return used


def _move(pids: list[int], procs: Path) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, OSError):  # a backend may exit meanwhile
            procs.write_text(str(pid))


def _cgroup_of(pid: int, controller: str | None) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or (controller and controller in controllers.split(",")):
            return path
    return "/"


def _v2_mount() -> Path | None:
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if parts[2] == "cgroup2" and "cpu" in (Path(parts[1]) / "cgroup.controllers").read_text().split():
            return Path(parts[1])
    return None


def _group(root: Path, name: str, settings: dict[str, str], pids: list[int]) -> Path:
    group = root / name
    group.mkdir(exist_ok=True)
    for knob, value in settings.items():
        (group / knob).write_text(value)
    _move(pids, group / "cgroup.procs")
    return group


@contextlib.contextmanager
def limited(cluster: Cluster, cpus: float) -> Iterator[Limit]:
    """Every node of ``cluster`` limited to ``cpus`` CPUs while the block runs; this process
    (the load generator) in a group of the same high weight, without a quota."""
    quota = int(cpus * PERIOD_US)
    names = [node.name for node in cluster.nodes]
    v1 = Path("/sys/fs/cgroup/cpu")
    v2 = None if (v1 / "cpu.cfs_quota_us").exists() else _v2_mount()
    limit: Limit | None = None
    origin: Path | None = None
    prefix = f"bench-{cluster.port_base}-"
    try:
        if (v1 / "cpu.cfs_quota_us").exists() and os.access(v1, os.W_OK):
            weight = {"cpu.shares": str(SHARES)}
            node = {"cpu.cfs_period_us": str(PERIOD_US), "cpu.cfs_quota_us": str(quota), **weight}
            limit = Limit("cgroup-v1", f"cpu.cfs_quota_us={quota} cpu.cfs_period_us={PERIOD_US} cpu.shares={SHARES}")
            origin = v1 / _cgroup_of(node_pids(cluster, "primary")[0], "cpu").lstrip("/")
            root = v1
        elif v2 is not None and os.access(v2, os.W_OK):
            weight = {"cpu.weight": str(WEIGHT)}
            node = {"cpu.max": f"{quota} {PERIOD_US}", **weight}
            limit = Limit("cgroup-v2", f"cpu.max={quota} {PERIOD_US} cpu.weight={WEIGHT}")
            origin = v2 / _cgroup_of(node_pids(cluster, "primary")[0], None).lstrip("/")
            (v2 / "cgroup.subtree_control").write_text("+cpu")
            root = v2
        if limit is not None:
            for name in names:
                limit.groups[name] = _group(root, prefix + name, node, node_pids(cluster, name))
            limit.groups["client"] = _group(root, prefix + "client", weight, [os.getpid()])
    except OSError:
        limit = _undo(cluster, limit, origin)
    if limit is None:
        limit = Limit("taskset", "one CPU per node (no fraction: cgroups not writable here)")
        count = os.cpu_count() or 1
        for i, name in enumerate(names):
            for pid in node_pids(cluster, name):
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(pid, {i % count})
            limit.where[name] = f"cpu {i % count}"
    limit.where.update({name: str(group) for name, group in limit.groups.items()})
    try:
        yield limit
    finally:
        _undo(cluster, limit, origin)


def _undo(cluster: Cluster, limit: Limit | None, origin: Path | None) -> None:
    """Every process back to ``origin``, groups removed (or affinity back to every CPU)."""
    if limit is None:
        return None
    if limit.method == "taskset":
        every = set(range(os.cpu_count() or 1))
        for node in cluster.nodes:
            for pid in node_pids(cluster, node.name) if cluster.is_running(node) else []:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(pid, every)
        return None
    for group in limit.groups.values():
        for _ in range(50):  # a backend forked meanwhile lands in the group: again until empty
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()] if group.exists() else []
            if not pids or origin is None:
                break
            _move(pids, origin / "cgroup.procs")
        for _ in range(40):  # busy while an exiting process is not reaped yet
            try:
                group.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
    return None
