"""The health cache's promises: off the request path, one probe per replica per interval,
safe across fork; and reads made while migrations run go to the primary."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from dbrouting import probe, replica_health
from dbrouting.conf import get_config
from dbrouting.health import cache
from dbrouting.router import PrimaryReplicaRouter, decide
from gists.models import Gist

from .routing_helpers import decision

pytestmark = pytest.mark.usefixtures("warm_health")


def test_probes__at_most_one_per_replica_per_interval_whatever_the_read_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[float, str]] = []
    real = probe.probe_replica

    def counting(alias: str, *args: object) -> probe.ReplicaProbe:
        calls.append((time.monotonic(), alias))
        return real(alias, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(probe, "probe_replica", counting)
    router = PrimaryReplicaRouter()
    start = time.monotonic()
    reads = 0
    while time.monotonic() - start < 2.0:
        router.db_for_read(Gist)
        reads += 1
    elapsed = time.monotonic() - start
    interval = get_config().check_interval_seconds
    for alias in ("replica1", "replica2"):
        count = sum(1 for t, a in calls if a == alias and start <= t)
        assert 1 <= count <= elapsed / interval + 1, (alias, count)
    assert reads > 10_000  # decisions are memory lookups: no probe on the request path


def test_router__never_waits_on_a_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real = probe.probe_replica

    def slow(alias: str, *args: object) -> probe.ReplicaProbe:
        gate.wait(5)
        return real(alias, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(probe, "probe_replica", slow)
    try:
        start = time.monotonic()
        for _ in range(1000):
            decide()
        assert time.monotonic() - start < 0.5
    finally:
        gate.set()


def _child(conn: multiprocessing.connection.Connection, runtime: str | None) -> None:
    try:
        # Before its own health thread opens anything: what it inherited of the parent's plane.
        inherited = [target for target in open_files() if runtime and target.startswith(runtime)]
        parent_rounds = cache.rounds
        ok = cache.wait_for_rounds(2, timeout=15)
        states = sorted(h.state for h in replica_health().values())
        kept = cache._probes.kept
        held = sorted(cache._plane._held) if cache._plane is not None else None
        conn.send((ok, states, parent_rounds, cache.rounds, len(kept._idle) + len(kept._busy), held, inherited))
    finally:
        conn.close()
        os._exit(0)


def open_files() -> list[str]:
    """What this process's descriptors point at."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # (the listing's own descriptor, closed by now)
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found


def fork_a_child() -> tuple[bool, list[str], int, int, int, list[str] | None, list[str]]:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    runtime = str(cache._plane.directory) if cache._plane is not None else None
    child = context.Process(target=_child, args=(sender, runtime))
    child.start()
    sender.close()  # the child's end only: a child that dies unheard is an EOFError, not a hang
    outcome = receiver.recv()
    child.join(timeout=20)
    return outcome  # type: ignore[no-any-return]


def test_fork__the_child_follows_the_parents_probes_with_a_thread_of_its_own() -> None:
    assert cache.wait_for_rounds(1)
    assert cache._plane is not None
    assert "prober" in cache._plane._held  # this process probes for the host
    ok, states, rounds_at_fork, child_rounds, connections_held, held, inherited = fork_a_child()
    assert ok
    assert states == ["ok", "ok"]
    assert child_rounds - rounds_at_fork >= 2  # snapshots its own thread copied
    assert connections_held == 0  # none of its own (nor the parent's, which it must not use)
    assert held == []  # the parent's locks stay the parent's...
    assert inherited == []  # ...and the child keeps no copy of them (which would hold them past the parent)
    assert "prober" in cache._plane._held


def test_fork__with_probe_scope_process_the_child_probes_on_its_own() -> None:
    with override_settings(DBROUTING={**settings.DBROUTING, "PROBE_SCOPE": "process"}):
        assert cache.wait_for_rounds(2)
        ok, states, rounds_at_fork, child_rounds, connections_held, held, _ = fork_a_child()
    assert ok
    assert states == ["ok", "ok"]
    assert child_rounds - rounds_at_fork >= 2  # rounds the child's own prober made
    assert connections_held == 3  # one per node
    assert held is None


def test_migrate__reads_the_primary_while_it_runs_and_not_after_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.management.commands import migrate

    seen: list[tuple[str, str]] = []

    def failing_handle(self: object, *args: object, **options: object) -> None:
        seen.append(decision())
        raise RuntimeError("a migration failed")

    assert decision()[1] == "replica"
    monkeypatch.setattr(migrate.Command, "handle", failing_handle)  # the base class our command wraps
    with pytest.raises(RuntimeError, match="a migration failed"):
        call_command("migrate", verbosity=0)
    assert seen == [("default", "forced")]
    assert decision()[1] == "replica"


def test_migrations__never_run_on_replicas() -> None:
    router = PrimaryReplicaRouter()
    assert router.allow_migrate("replica1", "gists") is False
    assert router.allow_migrate("default", "gists") is None


def test_relations__across_primary_and_replicas_are_allowed() -> None:
    a, b = Gist(), Gist()
    a._state.db, b._state.db = "default", "replica2"
    assert PrimaryReplicaRouter().allow_relation(a, b) is True
    b._state.db = "elsewhere"
    assert PrimaryReplicaRouter().allow_relation(a, b) is None
