"""One prober per host (dbrouting.plane): real app processes on the real cluster, the prober
killed and stopped under them, and the snapshot files they share."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from django.test import override_settings

from dbrouting import plane, replica_health, snapshots
from dbrouting.assessment import DOWN, REJOINING, Snapshot, marked_down
from dbrouting.conf import get_config
from dbrouting.exceptions import SettingError
from dbrouting.health import cache
from dbrouting.history import Point
from dbrouting.probe import PrimaryProbe

from .conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
OUT = (DOWN, REJOINING)
pytestmark = pytest.mark.usefixtures("live_db")


class Worker:
    """tests/plane_worker.py in a process of its own; ``last`` is its newest report."""

    def __init__(self, runtime_dir: Path, seconds: float = 60, read: bool = True) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DBROUTING_RUNTIME_DIR": str(runtime_dir),
        }
        env.update(database_urls())
        argv = [sys.executable, "-m", "tests.plane_worker", str(seconds), *(["--read"] if read else [])]
        self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.reports: list[dict[str, object]] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.reports.append(json.loads(line))

    @property
    def last(self) -> dict[str, object]:
        return self.reports[-1] if self.reports else {}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
        self.process.wait(timeout=10)


def database_urls() -> dict[str, str]:
    """DATABASE_URL and DATABASE_REPLICA_URLS of this test session's database (its test name)."""

    def url(alias: str) -> str:
        s = connections[alias].settings_dict
        return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"

    replicas = [a for a in connections if a != "default"]
    return {"DATABASE_URL": url("default"), "DATABASE_REPLICA_URLS": ",".join(url(a) for a in replicas)}


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Path:
    path = tmp_path / "runtime"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def workers(runtime_dir: Path) -> Iterator[list[Worker]]:
    started = [Worker(runtime_dir) for _ in range(3)]
    try:
        wait_until(lambda: all(w.last.get("states") == {"replica1": "ok", "replica2": "ok"} for w in started),
                   timeout=30, what="every worker's replicas ok")  # fmt: skip
        yield started
    finally:
        for worker in started:
            worker.stop()


def roles(workers: list[Worker]) -> list[str]:
    return sorted(str(w.last.get("role")) for w in workers)


def snapshot_written_at(runtime_dir: Path) -> float:
    files = list(runtime_dir.glob("*.json"))
    return max((f.stat().st_mtime for f in files), default=0.0)


def test_one_prober_per_host__the_others_follow_it_with_no_connection_of_their_own(workers: list[Worker]) -> None:
    wait_until(lambda: roles(workers) == ["follower", "follower", "prober"], what="one prober, two followers")
    rounds = [int(w.last["rounds"]) for w in workers]  # type: ignore[call-overload]
    wait_until(lambda: all(int(w.last["rounds"]) >= r + 3 for w, r in zip(workers, rounds, strict=True)),  # type: ignore[call-overload]
               what="every process's cache kept up to date")  # fmt: skip
    connections_held = {str(w.last["role"]): w.last["probe_connections"] for w in workers}
    assert connections_held == {"prober": 3, "follower": 0}  # one per node, in the prober alone
    assert [w.last["error_count"] for w in workers] == [0, 0, 0]
    assert all({"replica1", "replica2"} <= set(w.last["served"]) for w in workers)  # type: ignore[call-overload]


def test_prober_killed__a_follower_probes_within_an_interval_and_the_probe_timeout(
    workers: list[Worker], runtime_dir: Path
) -> None:
    wait_until(lambda: "prober" in roles(workers), what="a prober")
    [prober] = [w for w in workers if w.last["role"] == "prober"]
    others = [w for w in workers if w is not prober]
    config = get_config()
    os.kill(prober.process.pid, signal.SIGKILL)
    killed, wall_killed = time.monotonic(), time.time()
    wait_until(lambda: snapshot_written_at(runtime_dir) > wall_killed, timeout=10, what="a snapshot after the kill")
    took_over = time.monotonic() - killed
    assert took_over <= config.check_interval_seconds + config.probe_timeout_seconds
    wait_until(lambda: roles(others) == ["follower", "prober"], what="a follower became the prober")
    reads = [int(w.last["reads"]) for w in others]  # type: ignore[call-overload]
    wait_until(lambda: all(int(w.last["reads"]) > r + 20 for w, r in zip(others, reads, strict=True)),  # type: ignore[call-overload]
               what="reads after the takeover")  # fmt: skip
    assert [w.last["error_count"] for w in others] == [0, 0]
    assert all(w.last["states"] == {"replica1": "ok", "replica2": "ok"} for w in others)


def test_lag_history__every_process_reads_the_prober_s_and_it_outlives_the_prober(workers: list[Worker]) -> None:
    def histories(among: list[Worker]) -> list[object]:
        return [w.last.get("history") for w in among]

    wait_until(lambda: "prober" in roles(workers), what="a prober")
    wait_until(lambda: len({json.dumps(h) for h in histories(workers)}) == 1 and histories(workers)[0],
               what="one history in every process")  # fmt: skip
    first = {alias: at for alias, (_, at, _) in workers[0].last["history"].items()}  # type: ignore[union-attr]
    [prober] = [w for w in workers if w.last["role"] == "prober"]
    others = [w for w in workers if w is not prober]
    os.kill(prober.process.pid, signal.SIGKILL)
    killed = time.monotonic()

    def continued() -> bool:  # in each: the same first steps, and a step begun after the kill
        for found in histories(others):
            if not isinstance(found, dict) or {a: at for a, (_, at, _) in found.items()} != first:
                return False
            if any(newest <= killed for _, _, newest in found.values()):
                return False
        return True

    wait_until(continued, timeout=30, what="the history carried on by the new prober")


def test_prober_stopped__a_stand_in_probes_until_it_comes_back(workers: list[Worker], runtime_dir: Path) -> None:
    wait_until(lambda: "prober" in roles(workers), what="a prober")
    [prober] = [w for w in workers if w.last["role"] == "prober"]
    others = [w for w in workers if w is not prober]
    config = get_config()
    os.kill(prober.process.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_until(lambda: "stand-in" in roles(others), timeout=10, what="a stand-in")
        assert time.monotonic() - stopped <= 1.2 * config.check_interval_seconds + config.probe_timeout_seconds + 0.5
        rounds = [int(w.last["rounds"]) for w in others]  # type: ignore[call-overload]
        wait_until(lambda: all(int(w.last["rounds"]) >= r + 3 for w, r in zip(others, rounds, strict=True)),  # type: ignore[call-overload]
                   what="snapshots from the stand-in")  # fmt: skip
    finally:
        os.kill(prober.process.pid, signal.SIGCONT)
    wait_until(lambda: "stand-in" not in roles(others), timeout=10, what="the stand-in steps down")
    wait_until(lambda: [w.last["probe_connections"] for w in others] == [0, 0], what="its probe connections closed")
    assert [w.last["error_count"] for w in others] == [0, 0]  # the followers read on throughout
    assert all(w.last["states"] == {"replica1": "ok", "replica2": "ok"} for w in others)


def test_mark_down__the_whole_host_leaves_the_replica_at_once(workers: list[Worker], runtime_dir: Path) -> None:
    with override_settings(DBROUTING={**get_config_dict(), "RUNTIME_DIR": str(runtime_dir)}):

        def joined() -> bool:  # (its thread moves to the new plane at its next turn)
            cache.snapshot()
            return cache._plane is not None and cache._plane.path.parent == runtime_dir and cache._plane.path.exists()

        wait_until(joined, what="this process on the workers' plane")
        marked = time.monotonic()
        cache.mark_down("replica1", "seen failing by a request of this process")

        def seen_down(worker: Worker) -> float | None:  # out: down, or already rejoining after a probe
            changes = worker.last.get("changes", [])
            return next(
                (at for at, alias, state in changes if alias == "replica1" and state in OUT and at > marked), None
            )  # type: ignore[union-attr]

        followers = [w for w in workers if w.last["role"] == "follower"]  # (the prober's next probe decides)
        wait_until(lambda: all(seen_down(w) is not None for w in followers), timeout=5, what="followers saw it down")
        assert max(seen_down(w) for w in followers) - marked < 0.5  # type: ignore[type-var,operator]  # a follow tick
        wait_until(lambda: all(w.last["states"]["replica1"] == "ok" for w in workers),  # type: ignore[index]
                   what="replica1 readmitted by a later probe")  # fmt: skip


def get_config_dict() -> dict[str, object]:
    from django.conf import settings

    return dict(settings.DBROUTING)


def test_lock__a_follower_trying_every_turn_keeps_no_descriptor(runtime_dir: Path) -> None:
    prober, follower = plane.Plane(runtime_dir, "key"), plane.Plane(runtime_dir, "key")
    assert prober.lead()
    before = set(plane._fds)
    for _ in range(100):
        assert not follower.lead()
        assert not follower.stand_in(get_config())  # the prober's heartbeat is fresh
    assert set(plane._fds) == before  # one per lock it holds, none per try
    prober.release()
    assert follower.lead()
    follower.release()


def test_snapshot__the_same_after_a_trip_through_the_file(runtime_dir: Path) -> None:
    assert cache.wait_for_rounds(2)
    snapshot = cache.latest
    decoded = snapshots.decode(snapshots.encode(snapshot))
    assert decoded is not None
    assert decoded.replicas == snapshot.replicas
    assert decoded.primary == snapshot.primary
    assert [h.window for h in decoded.replicas.values()] == [h.window for h in snapshot.replicas.values()]
    assert decoded.history == snapshot.history
    assert set(decoded.history) == {"replica1", "replica2"}
    assert snapshots.decode(b'{"replicas": {"x": {"nope": 1}}}') is None  # not ours: ignored, never trusted


@pytest.mark.parametrize(
    "spoil",
    [
        lambda raw: raw.update(schema=snapshots.SCHEMA - 1),  # another version's file
        lambda raw: raw["replicas"]["replica1"].update(measured_at="x"),  # a wrong type
        lambda raw: raw["replicas"]["replica1"].update(available=1),  # an int for a bool
        lambda raw: raw["replicas"]["replica1"].update(good_streak=True),  # a bool for an int
        lambda raw: raw["replicas"]["replica1"].update(extra=1),  # a field we do not know
        lambda raw: raw["replicas"]["replica1"].update(marked_down_at=time.monotonic() + 3600),  # another boot's
        lambda raw: raw["replicas"]["replica1"].update(window=[[1.0]]),
        lambda raw: raw.update(primary={"alias": "default"}),
        lambda raw: raw.pop("history"),  # the previous schema's fields
        lambda raw: raw["history"]["replica1"].append([time.monotonic() + 3600, 0.0, True, False]),  # another boot's
        lambda raw: raw["history"]["replica1"].append([time.monotonic(), 0.0, "yes", False]),
    ],
)
def test_snapshot__a_file_that_is_not_exactly_ours_is_never_trusted(spoil: object) -> None:
    assert cache.wait_for_rounds(2)
    raw = json.loads(snapshots.encode(cache.latest))
    assert snapshots.decode(json.dumps(raw).encode()) is not None
    spoil(raw)  # type: ignore[operator]
    assert snapshots.decode(json.dumps(raw).encode()) is None
    assert snapshots.decode(b"[" * 100_000) is None  # too deep for the parser: refused, not raised


def test_runtime_dir__removed_under_the_prober__requests_never_see_it_and_it_probes_alone(
    runtime_dir: Path,
) -> None:
    with override_settings(DBROUTING={**get_config_dict(), "RUNTIME_DIR": str(runtime_dir)}):
        wait_until(lambda: cache.snapshot() and cache._plane is not None and cache._plane.directory == runtime_dir,
                   what="on the plane")  # fmt: skip
        shutil.rmtree(runtime_dir)
        cache.mark_down("replica1", "a request saw it fail")  # publishes into a folder that is gone: no error
        wait_until(lambda: cache._plane is None, what="the plane dropped")
        rounds = cache.rounds
        assert cache.wait_for_rounds(3)  # probing alone meanwhile
        assert cache.rounds >= rounds + 3
        wait_until(lambda: {h.state for h in replica_health().values()} == {"ok"}, what="replicas usable")
    cache.reset()


def test_merge__a_mark_down_wins_only_over_what_was_measured_before_it() -> None:
    assert cache.wait_for_rounds(2)
    measured = cache.latest
    down = Snapshot({**measured.replicas, "replica1": marked_down(measured.replicas["replica1"], "failed")},
                    measured.primary, measured.last_good)  # fmt: skip
    assert snapshots.merge(measured, down).replicas["replica1"].state == DOWN  # a probe begun before it
    assert cache.wait_for_rounds(2)
    later = cache.latest  # probes begun after the mark-down
    assert snapshots.merge(later, down).replicas["replica1"].state == "ok"
    assert snapshots.merge(down, later).replicas["replica2"] == down.replicas["replica2"]  # the rest is the base's
    old = Snapshot({"replica1": dataclasses.replace(down.replicas["replica1"], marked_down_at=time.monotonic() - 3600)})
    assert snapshots.merge(Snapshot(), old).replicas == {}  # a file of processes long gone: history, not news
    assert snapshots.merge(later, old).replicas["replica1"].state == "ok"


def test_merge__the_primarys_last_good_probe_is_mine_or_theirs_when_i_have_none() -> None:
    seen = PrimaryProbe("default", ok=True, duration=0.0, started=time.monotonic(), lsn=10, system_identifier=7)
    away = PrimaryProbe("default", ok=False, duration=0.0, started=time.monotonic(), error="refused")
    # A prober that starts while the primary is away keeps checking replicas against the host's
    # last known identifier instead of refusing them all as unverified.
    assert snapshots.merge(Snapshot(primary=away), Snapshot(primary=seen, last_good=seen)).last_good == seen
    mine = dataclasses.replace(seen, lsn=20)
    assert snapshots.merge(Snapshot(last_good=mine), Snapshot(last_good=seen)).last_good == mine


def test_merge__the_lag_history_is_mine_or_theirs_when_i_have_none() -> None:
    mine, theirs = {"replica1": (Point(1.0, 0.0, True, False),)}, {"replica1": (Point(2.0, 9.0, False, False),)}
    assert snapshots.merge(Snapshot(history=mine), Snapshot(history=theirs)).history == mine
    assert snapshots.merge(Snapshot(), Snapshot(history=theirs)).history == theirs  # a prober that starts
    alone = Snapshot()
    assert snapshots.merge(alone, Snapshot()) is alone


def test_lag_history__an_app_restarted_carries_on_the_host_s(runtime_dir: Path) -> None:
    before = Worker(runtime_dir)
    try:
        wait_until(lambda: before.last.get("role") == "prober" and before.last.get("history"), what="a history")
        first = {alias: at for alias, (_, at, _) in before.last["history"].items()}  # type: ignore[union-attr]
    finally:
        before.stop()
    after = Worker(runtime_dir)  # the only process: it probes, from the file's history on
    try:
        wait_until(lambda: after.last.get("role") == "prober" and after.last.get("rounds", 0) >= 3, what="probing")  # type: ignore[operator]
        assert {alias: at for alias, (_, at, _) in after.last["history"].items()} == first  # type: ignore[union-attr]
    finally:
        after.stop()


def test_runtime_dir__an_open_folder_is_refused_and_the_process_probes_alone(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)
    with pytest.raises(SettingError, match="mode 700") as raised:
        plane.Plane(open_dir, "key")
    assert raised.value.check_id == "dbrouting.W005"
    with override_settings(DBROUTING={**get_config_dict(), "RUNTIME_DIR": str(open_dir)}):
        cache.reset()
        assert cache.wait_for_rounds(2)  # probes on its own instead: never left without health
        assert cache._plane is None
        assert {h.state for h in replica_health().values()} == {"ok"}
    cache.reset()


def test_runtime_dir__a_bad_one_is_a_system_check_warning(tmp_path: Path) -> None:
    from django.core.checks import run_checks

    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with override_settings(DBROUTING={**get_config_dict(), "RUNTIME_DIR": str(open_dir)}):
        [warning] = [m for m in run_checks() if m.id == "dbrouting.W005"]
    assert "mode 700" in warning.msg
    assert not [m for m in run_checks() if m.id == "dbrouting.W005"]
