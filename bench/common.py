"""What every benchmark shares: a cluster of its own, Django pointed at it, its data, figures, plots.

Every script takes ``--quick`` (tiny sizes: the smoke test), ``--port-base`` (default
``BENCH_PORT_BASE`` or 25632: never the developer cluster's 25432) and ``--data-dir`` (default
``.pgdata/bench-<port>``). It creates the cluster with ``scripts/pgcluster.py``'s ``Cluster`` when
missing and destroys it at the end unless ``--keep-cluster`` (``run_all.py`` keeps one for all);
a run that will destroy it holds a lock beside its folder, so a second run on the same ports
stops at once instead of sharing (and then destroying) the cluster of the first.
Figures are printed as ``name=value`` lines and saved as JSON for ``report.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "scripts"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from pgcluster import APP_DATABASE, APP_PASSWORD, APP_USER, Cluster  # noqa: E402

DEFAULT_PORT_BASE = int(os.environ.get("BENCH_PORT_BASE", "25632"))
RESULTS_DIR = ROOT / ".pgdata" / "bench-results"
DOCS_DIR = ROOT / "docs"


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every script has; add your own, then call :func:`parse`."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, outputs in a temporary folder (smoke test)")
    p.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE, help="primary's port; replicas on the next")
    p.add_argument("--data-dir", type=Path, default=None, help="cluster folder (default .pgdata/bench-<port>)")
    p.add_argument("--keep-cluster", action="store_true", help="leave the cluster running at the end")
    p.add_argument("--out-dir", type=Path, default=None, help="where plots go (default docs/)")
    p.add_argument("--results-dir", type=Path, default=None, help="where figures go as JSON")
    p.add_argument("--no-report", action="store_true", help="do not regenerate docs/benchmarks.md")
    p.add_argument("--side", default=None, help=argparse.SUPPRESS)  # a child process of a comparison
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = p.parse_args(argv)
    if args.data_dir is None:
        args.data_dir = ROOT / ".pgdata" / f"bench-{args.port_base}"
    args.data_dir = args.data_dir.resolve()  # pgcluster recognises its servers by absolute path
    if args.quick and args.out_dir is None:
        args.out_dir = Path(tempfile.gettempdir()) / f"bench-quick-{args.port_base}"
    args.out_dir = args.out_dir or DOCS_DIR
    args.results_dir = args.results_dir or (args.out_dir if args.quick else RESULTS_DIR)
    args.forward = ["--port-base", str(args.port_base), "--data-dir", str(args.data_dir)]
    if args.quick:
        args.forward.append("--quick")
    return args


def cluster_of(args: argparse.Namespace) -> Cluster:
    return Cluster(base_dir=args.data_dir, port_base=args.port_base, replica_count=2)


@contextlib.contextmanager
def running_cluster(args: argparse.Namespace) -> Iterator[Cluster]:
    """The benchmark's cluster, up (idempotent); destroyed afterwards unless ``--keep-cluster``."""
    cluster = cluster_of(args)
    with contextlib.ExitStack() as stack:
        if not args.keep_cluster:  # it destroys the cluster at the end: it must be its only user
            stack.enter_context(_sole_user(args.data_dir))
        retrying(lambda: cluster.up(log=False))
        try:
            yield cluster
        finally:
            if not args.keep_cluster:
                if "dbrouting.health" in sys.modules:  # stop probing first: no warnings about a cluster going away
                    sys.modules["dbrouting.health"].cache.reset()
                cluster.destroy(log=False)


@contextlib.contextmanager
def _sole_user(data_dir: Path) -> Iterator[None]:
    """A lock beside the cluster's folder, held for the run: a second run on the same ports
    stops at once instead of measuring alongside this one and then destroying its cluster."""
    lock_path = data_dir.with_name(data_dir.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SystemExit(
                f"bench: another benchmark run uses {data_dir} ({lock_path} is locked): "
                "wait for it to end, or give this one another --port-base"
            ) from None
        yield


def retrying(start: Callable[[], None], seconds: float = 30.0) -> None:
    """Start servers, again while a port is taken (a cluster of an earlier run still closing, or
    a --port-base inside the kernel's ephemeral range, where client connections take ports)."""
    from pgcluster import ClusterError

    deadline = time.monotonic() + seconds
    while True:
        try:
            return start()
        except ClusterError as exc:
            if "in use" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def node_url(cluster: Cluster, name: str) -> str:
    return f"postgres://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{cluster.node(name).port}/{APP_DATABASE}"


def use_cluster(
    cluster: Cluster,
    *,
    router: str = "dbrouting",
    default: str = "primary",
    replicas: Sequence[str] = ("replica1", "replica2"),
    **extra: str,
) -> dict[str, str]:
    """Environment for Django on this cluster (set in this process too): ``default`` is the node
    ``default`` names, then ``replica1``, ``replica2``... the nodes ``replicas`` names."""
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_ROUTER": router,
        "DATABASE_URL": node_url(cluster, default),
        "DATABASE_REPLICA_URLS": ",".join(node_url(cluster, n) for n in replicas),
        "PGCLUSTER_PORT_BASE": str(cluster.port_base),
        "PGCLUSTER_DIR": str(cluster.base_dir),
        "DEBUG": "false",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        **extra,
    }
    os.environ.update(env)
    return env


def start_django(cluster: Cluster, **kwargs: Any) -> None:
    use_cluster(cluster, **kwargs)
    import django

    django.setup()


def wait_until_usable(aliases: Sequence[str] = ("replica1", "replica2"), timeout: float = 30.0) -> None:
    """Until the health cache of this process finds every one of ``aliases`` usable."""
    from dbrouting import replica_health
    from dbrouting.health import cache

    deadline = time.monotonic() + timeout
    while any(getattr(replica_health().get(a), "state", None) != "ok" for a in aliases):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: replicas not usable in {timeout:.0f} s: {dict(replica_health())}")
        cache.wait_for_rounds(1)


def wait_for_replicas(cluster: Cluster, timeout: float = 120.0) -> None:
    """Until every running replica has replayed the primary's current WAL position."""
    target = cluster.psql(cluster.primary, "SELECT pg_current_wal_insert_lsn()")
    deadline = time.monotonic() + timeout
    for node in cluster.replicas:
        while cluster.psql(node, f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") != "t":
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: {node.name} did not catch up with the primary in {timeout:.0f} s")
            time.sleep(0.05)


def kill9(cluster: Cluster, name: str) -> list[int]:
    """``kill -9`` a node's postmaster and backends; returns their pids for :func:`restart`."""
    from pgcluster import _children

    pid = cluster.pid(cluster.node(name))
    assert pid is not None, f"{name} is not running"
    pids = [pid, *_children(pid)]
    cluster.signal(name, signal.SIGKILL)
    return pids


def restart(cluster: Cluster, name: str, killed: Sequence[int], timeout: float = 30.0) -> None:
    """Start a node killed by :func:`kill9` as soon as its processes are gone.

    ``Cluster.start`` would first wait for backends titled ``postgres: <name>:`` to go, and
    finds those of every other cluster with a node of that name (the developer cluster's):
    10 s lost. The killed processes are known here, so their stale lock files go at once.
    """
    node = cluster.node(name)
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}/cmdline").exists() and Path(f"/proc/{pid}/cmdline").read_bytes() for pid in killed):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: processes of the killed {name} still alive after {timeout:.0f} s")
        time.sleep(0.01)
    for stale in (node.data_dir / "postmaster.pid", cluster.socket_dir / f".s.PGSQL.{node.port}.lock"):
        stale.unlink(missing_ok=True)
    retrying(lambda: cluster.start(name))


# Six cities, gists within about 20 km of their centres (denser near them), as seed_gists makes.
CITIES = [(48.8566, 2.3522), (40.7128, -74.0060), (35.6762, 139.6503), (-23.5505, -46.6333), (-1.2921, 36.8219)]
CITIES += [(-33.8688, 151.2093)]
_CITY_VALUES = ", ".join(f"({i}, {lat}, {lng})" for i, (lat, lng) in enumerate(CITIES))
LOAD_SQL = f"""
INSERT INTO gists_gist (id, gist_id, title, content, latitude, longitude, created_at)
SELECT gen_random_uuid(), substr(md5(i::text), 1, 22), 'Gist ' || i, 'A benchmark gist, number ' || i || '.',
       least(90, greatest(-90, c.lat + p.d * cos(p.b) / 111.32)),
       (mod((c.lng + p.d * sin(p.b) / (111.32 * cos(radians(c.lat))) + 540)::numeric, 360) - 180)::float8,
       now() - random() * interval '30 days'
FROM generate_series(1, %s) AS i
CROSS JOIN LATERAL (SELECT abs(sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) * 7 AS d,
                           2 * pi() * random() AS b, mod(i, {len(CITIES)}) AS k) AS p
JOIN (VALUES {_CITY_VALUES}) AS c(k, lat, lng) ON c.k = p.k
"""


def ensure_gists(cluster: Cluster, rows: int) -> int:
    """Migrate, and load ``rows`` gists around the cities unless at least that many exist.
    Returns the row count; the replicas have replayed it all."""
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", database="default", verbosity=0)
    with connections["default"].cursor() as cur:
        cur.execute("SELECT count(*) FROM gists_gist")
        (count,) = cur.fetchone()
        if count < rows:
            cur.execute("TRUNCATE gists_gist")
            cur.execute(LOAD_SQL, [rows])
            cur.execute("VACUUM (ANALYZE) gists_gist")
            count = rows
    wait_for_replicas(cluster)
    return int(count)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def abba(sides: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """(round, side) in alternating order, reversed every other round (A B, B A, ...): drift
    over time weighs on every side alike."""
    for r in range(rounds):
        for side in sides if r % 2 == 0 else reversed(sides):
            yield r, side


class Figures:
    """Prints ``name=value`` lines as they come, then saves them for the report."""

    def __init__(self, script: str, args: argparse.Namespace) -> None:
        self.script = script
        self.args = args
        self.values: dict[str, Any] = {}
        self.plots: list[str] = []
        self.started = time.monotonic()

    def add(self, name: str, value: Any, digits: int = 3) -> Any:
        if isinstance(value, float):
            value = round(value, digits)
        self.values[name] = value
        print(f"{name}={value}", flush=True)
        return value

    def plot(self, name: str, draw: Callable[[Any], None], title: str, size: tuple[float, float] = (7, 3.6)) -> None:
        """``docs/bench-<name>.png`` drawn by ``draw(axes)`` (matplotlib, Agg)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=size)
        draw(ax)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        self.args.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.args.out_dir / f"bench-{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        self.plots.append(path.name)
        print(f"plot_{name.replace('-', '_')}={path}", flush=True)

    def save(self) -> None:
        seconds = self.add(f"{self.script}_seconds", time.monotonic() - self.started, 1)
        self.args.results_dir.mkdir(parents=True, exist_ok=True)
        data = {"script": self.script, "figures": self.values, "plots": self.plots, "seconds": seconds}
        data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        data["quick"] = bool(self.args.quick)
        script = Path(sys.argv[0]).resolve()
        shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
        data["command"] = " ".join([".venv/bin/python", str(shown), *_own_options(sys.argv[1:])])
        (self.args.results_dir / f"{self.script}.json").write_text(json.dumps(data, indent=1))
        if not self.args.quick and not self.args.no_report:
            from bench import report

            report.write(self.args.results_dir, DOCS_DIR / "benchmarks.md")


def _own_options(argv: list[str]) -> list[str]:
    """The options a person gave, without those run_all.py passes to every script."""
    shown, skip = [], False
    for arg in argv:
        if skip or arg in ("--keep-cluster", "--no-report"):
            skip = False
            continue
        if arg in ("--data-dir", "--out-dir", "--results-dir"):
            skip = True
            continue
        shown.append(arg)
    return shown


# An idle app process (an idle gunicorn worker, as far as probing goes): Django up, its health
# cache started, then "ready". On SIGUSR1 it prints the probes it has sent so far, per alias, as
# a JSON line.
IDLE_APP = """
import json, signal, time, django
django.setup()
from prometheus_client import REGISTRY
from dbrouting.health import cache
def report(*_):
    counts = {s.labels["alias"]: s.value for m in REGISTRY.collect() if m.name == "dbrouting_probe_duration_seconds"
              for s in m.samples if s.name.endswith("_count")}
    print(json.dumps(counts), flush=True)
signal.signal(signal.SIGUSR1, report)
cache.snapshot()
print("ready", flush=True)
while True:
    time.sleep(1)
"""


@contextlib.contextmanager
def idle_app_processes(count: int, **env: str) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` idle app processes (``IDLE_APP``) on this process's environment plus ``env``."""
    procs = [
        subprocess.Popen([sys.executable, "-c", IDLE_APP], cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                         text=True)
        for _ in range(count)
    ]  # fmt: skip
    try:
        for proc in procs:  # (a SIGUSR1 before its handler is set would end it)
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit(f"bench: an idle app process ended before it was ready (exit {proc.wait()})")
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
