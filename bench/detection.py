"""B4 detection: how fast a lagging or killed replica stops getting reads, and comes back.

    .venv/bin/python bench/detection.py [--repeat 3] [--outage 2] [--quick]

Two read loops run side by side through the same faults: ours in this process (the project's
settings: ``CHECK_INTERVAL_SECONDS`` 0.5, ``MAX_STALENESS_SECONDS`` 5), and django-multidb-router's
in a child process (``PinningReplicaRouter``, Django's engine). Each loop reads one gist every
2 ms as a request would (``request_started``/``request_finished`` around it, so Django drops
broken connections) and records the node that answered (``current_setting('port')``) or the error.

- lag: replica1's replay is paused and one write made. Its lag passes the tolerance at
  write + ``MAX_STALENESS_SECONDS``; the figure is exclusion minus that moment (negative:
  excluded early, since staleness counts from the last probe that saw it caught up). Reads
  served by replica1 after that moment are reads beyond the tolerance. Then replay resumes.
- kill -9: replica1's postmaster and backends are killed; ``--outage`` seconds later it is
  started again. Failed reads, seconds to routing away, seconds from restart to readmission.

Ours is measured in a process that is not the host's prober: three idle app processes start
first and one of them probes (``PROBE_SCOPE`` "host"); this one follows its snapshots
(``b4_measuring_process_role``), and marks replica1 down for the whole host when a read fails.

Times are medians over ``--repeat`` rounds; read counts are totals.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common, sides


class ReadLoop:
    """One read per simulated request, in a thread, until stopped."""

    def __init__(self, scoped: bool) -> None:
        self.scoped = scoped
        self.served: list[tuple[float, str]] = []
        self.errors: list[tuple[float, str]] = []
        self.latencies: list[float] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        from django.core.signals import request_finished, request_started
        from django.db import connections

        from dbrouting import routing_scope
        from tests.routing_helpers import served_by

        while not self.stop_event.is_set():
            request_started.send(sender=None)
            start = time.monotonic()
            try:
                with routing_scope() if self.scoped else nullcontext():
                    alias = served_by()
                self.served.append((time.monotonic(), alias))
            except Exception as exc:
                self.errors.append((time.monotonic(), f"{type(exc).__name__}: {exc}"[:200]))
            finally:
                self.latencies.append(time.monotonic() - start)
                request_finished.send(sender=None)
            time.sleep(0.002)
        connections.close_all()

    def stop(self) -> dict[str, Any]:
        self.stop_event.set()
        self.thread.join(timeout=60)
        return {"served": self.served, "errors": self.errors, "latencies": self.latencies}


def side(args: Any) -> None:
    """The django-multidb-router read loop, in a child process."""
    common.start_django(common.cluster_of(args), router="multidb", **staleness(args))
    loops: list[ReadLoop] = []
    sides.serve({"start": lambda: loops.append(ReadLoop(scoped=False)), "stop": lambda: loops.pop().stop()})


def staleness(args: Any) -> dict[str, str]:
    quick = {"DBROUTING_MAX_STALENESS_SECONDS": "1.0", "DBROUTING_CHECK_INTERVAL_SECONDS": "0.2"}
    return quick if args.quick else {}


def wait(predicate: Any, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("bench: condition not met in time")
        time.sleep(0.005)
    return time.monotonic()


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--outage", type=float, default=2.0, help="seconds from kill -9 to restart")
    args = common.parse(p)
    if args.quick:
        args.repeat, args.outage = 1, 1.0
    if args.side:
        return side(args)
    figures = common.Figures("b4", args)
    with common.running_cluster(args) as cluster, contextlib.ExitStack() as stack:
        common.start_django(cluster, **staleness(args))
        from dbrouting import plane, replica_health
        from dbrouting.conf import get_config
        from dbrouting.health import cache
        from gists.models import Gist

        config = get_config()
        # The helpers first, and one of them probing, before this process touches the router
        # (its first read would make it the host's prober).
        stack.enter_context(common.idle_app_processes(3))
        place = plane.where(config)
        assert place is not None, "B4 measures a follower: PROBE_SCOPE must be 'host'"
        shared = place[0] / f"{place[1]}.json"
        wait(lambda: shared.exists() and time.time() - shared.stat().st_mtime < 1.0, timeout=60)
        common.ensure_gists(cluster, 100)
        common.wait_until_usable()
        following = cache._plane is not None and not cache._plane._held  # no lock: it copies the prober's
        figures.add("b4_measuring_process_role", "follower" if following else "prober")

        def state() -> str:
            health = replica_health().get("replica1")
            return health.state if health else "unknown"

        multidb = sides.Side(__file__, "multidb", args, staleness(args))
        ours = ReadLoop(scoped=True)
        multidb.call("start")
        rounds: list[dict[str, float]] = []
        settle = 0.3 if args.quick else 1.0
        try:
            for _ in range(args.repeat):
                r: dict[str, float] = {}
                cluster.psql(cluster.node("replica1"), "SELECT pg_wal_replay_pause()")
                try:
                    Gist.objects.using("default").create(title="lag", content="c", latitude=0, longitude=0)
                    r["over"] = time.monotonic() + config.max_staleness_seconds
                    r["excluded"] = wait(lambda: state() == "lagging")
                    time.sleep(max(0.0, r["over"] + settle - time.monotonic()))
                finally:
                    cluster.psql(cluster.node("replica1"), "SELECT pg_wal_replay_resume()")
                r["resumed"] = time.monotonic()
                r["back"] = wait(lambda: state() == "ok")
                time.sleep(settle)
                pids = common.kill9(cluster, "replica1")
                r["killed"] = time.monotonic()
                r["routed_away"] = wait(lambda: state() == "down")
                time.sleep(max(0.0, r["killed"] + args.outage - time.monotonic()))
                common.restart(cluster, "replica1", pids)
                r["restarted"] = time.monotonic()
                readmitted = r["readmitted"] = wait(lambda: state() == "ok")
                wait(lambda at=readmitted: any(t > at and a == "replica1" for t, a in ours.served[-50:]))
                time.sleep(settle)
                r["end"] = time.monotonic()
                rounds.append(r)
        finally:
            mine = ours.stop()
            theirs = multidb.call("stop")
            multidb.close()
    report(figures, config, rounds, mine, theirs)


def count(records: list, begin: float, end: float, alias: str | None = None) -> int:
    return sum(1 for t, a in records if begin <= t <= end and (alias is None or a == alias))


def report(figures: common.Figures, config: Any, rounds: list[dict[str, float]], mine: dict, theirs: dict) -> None:
    figures.add("b4_check_interval_seconds", config.check_interval_seconds)
    figures.add("b4_max_staleness_seconds", config.max_staleness_seconds)
    figures.add("b4_lag_exclusion_seconds", common.median([r["excluded"] - r["over"] for r in rounds]))
    figures.add("b4_lag_exclusion_seconds_max", max(r["excluded"] - r["over"] for r in rounds))
    figures.add("b4_lag_readmission_seconds", common.median([r["back"] - r["resumed"] for r in rounds]))
    for name, data in (("", mine), ("_multidb", theirs)):
        beyond = sum(count(data["served"], r["over"], r["resumed"], "replica1") for r in rounds)
        figures.add(f"b4_lag_reads_beyond_tolerance{name}", beyond)
    figures.add("b4_lag_exclusion_seconds_multidb", "never (no health checks)")
    figures.add("b4_kill9_routing_away_seconds", common.median([r["routed_away"] - r["killed"] for r in rounds]))
    last = [max((t for t, a in mine["served"] if a == "replica1" and t < r["restarted"]), default=0) for r in rounds]
    away = [max(0.0, t - r["killed"]) for t, r in zip(last, rounds, strict=True)]
    figures.add("b4_kill9_last_read_on_victim_after_kill_seconds", max(away))
    for name, data in (("", mine), ("_multidb", theirs)):
        failed = sum(count(data["errors"], r["killed"], r["end"]) for r in rounds)
        during = sum(count(data["served"], r["killed"], r["readmitted"]) for r in rounds)
        figures.add(f"b4_kill9_failed_reads{name}", failed)
        figures.add(f"b4_kill9_reads_during_fault{name}", during)
        figures.add(f"b4_kill9_failed_read_share{name}", failed / max(1, failed + during))
    figures.add("b4_readmission_seconds", common.median([r["readmitted"] - r["restarted"] for r in rounds]))
    back = [
        min((t for t, a in theirs["served"] if a == "replica1" and t > r["restarted"]), default=r["end"])
        for r in rounds
    ]
    figures.add(
        "b4_readmission_seconds_multidb", common.median([t - r["restarted"] for t, r in zip(back, rounds, strict=True)])
    )
    figures.add("b4_read_p99_ms", common.percentile(mine["latencies"], 99) * 1000, 2)
    figures.add("b4_read_max_ms", max(mine["latencies"]) * 1000, 2)
    figures.add("b4_rounds", len(rounds))
    r = rounds[-1]

    def draw(ax: Any) -> None:
        rows = []
        for label, data in (("dbrouting", mine), ("multidb", theirs)):
            for alias in ("primary", "replica1", "replica2"):
                rows.append((f"{label}: {alias if alias != 'primary' else 'default'}", data["served"], alias))
            rows.append((f"{label}: failed", data["errors"], None))
        for y, (_, records, alias) in enumerate(rows):
            xs = [
                t - r["killed"]
                for t, a in records
                if r["killed"] - 1 <= t <= r["end"] and (alias is None or a == alias)
            ]
            ax.scatter(xs, [y] * len(xs), s=2, color="#c33" if alias is None else "#369", marker="|")
        for x, label in (
            (0, "kill -9"),
            (r["restarted"] - r["killed"], "restart"),
            (r["readmitted"] - r["killed"], "readmitted"),
        ):
            ax.axvline(x, color="#999", lw=0.8, ls="--")
            ax.text(x, -0.4, label, fontsize=7, rotation=90, va="bottom")
        ax.set_yticks(range(len(rows)), [label.replace(": primary", ": default") for label, _, _ in rows], fontsize=7)
        ax.set_xlabel("seconds since replica1 was killed (each mark: one read)")

    figures.plot("b4-kill9", draw, "B4 reads during kill -9 of replica1, dbrouting vs multidb", size=(8, 4))
    figures.save()


if __name__ == "__main__":
    main()
