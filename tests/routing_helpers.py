"""Helpers to see, on the server side, which node served a read, and to fault nodes."""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from django.db import connections
from django.db.models.expressions import RawSQL
from pgcluster import PGBOUNCER_PORT_OFFSET, Cluster

from gists.models import Gist

T = TypeVar("T")


def ports() -> dict[str, int]:
    """Each alias's server port (behind PgBouncer, the node's own, not its bouncer's)."""
    offset = PGBOUNCER_PORT_OFFSET if os.environ.get("PGCLUSTER_PGBOUNCER") == "1" else 0
    return {alias: int(connections[alias].settings_dict["PORT"]) - offset for alias in connections}


def served_by() -> str:
    """Read one gist through the router; the alias whose server answered (from its own port)."""
    port = (
        Gist.objects.annotate(node_port=RawSQL("current_setting('port')::int", ()))
        .values_list("node_port", flat=True)
        .first()
    )
    assert port is not None, "served_by() needs at least one gist"
    return {p: a for a, p in ports().items()}[port]


def decision(**hints: object) -> tuple[str, str]:
    """Route one read in the current scope: (alias, reason), the reason as the scope counted it."""
    from dbrouting.context import current_state
    from dbrouting.router import decide

    before = current_state().tally()
    alias = decide(**hints)
    [(key, count)] = [(k, n - before.get(k, 0)) for k, n in current_state().tally().items() if n != before.get(k, 0)]
    assert key[0] == alias, (key, alias)
    assert count == 1, key
    return key


def as_another_client(func: Callable[[], T]) -> T:
    """``func`` run as another client's request would be: in a context and a routing scope of its
    own, so that its writes do not pin this test's scope (a nested scope would hand them on)."""
    from dbrouting import routing_scope

    def request() -> T:
        with routing_scope():
            return func()

    return contextvars.Context().run(request)


def served_by_each(count: int) -> list[str]:
    """``count`` reads, each in a routing scope of its own (as ``count`` requests would be)."""
    from dbrouting import routing_scope

    aliases = []
    for _ in range(count):
        with routing_scope():
            aliases.append(served_by())
    return aliases


def pause_replay(cluster: Cluster, alias: str) -> None:
    cluster.psql(cluster.node(alias), "SELECT pg_wal_replay_pause()")


def resume_replay(cluster: Cluster, alias: str) -> None:
    cluster.psql(cluster.node(alias), "SELECT pg_wal_replay_resume()")


@dataclass
class ReadLoop:
    """Reads through the router in a thread of its own until stopped, recording each outcome."""

    served: list[tuple[float, str]] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ReadLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    [alias] = served_by_each(1)  # a scope per read, as requests: load spreads
                    self.served.append((time.monotonic(), alias))
                except Exception as exc:
                    self.errors.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))
                self.latencies.append(time.monotonic() - start)
                time.sleep(0.002)
        finally:
            for alias in connections:
                connections[alias].close()

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=60)

    def served_since(self, moment: float) -> set[str]:
        return {alias for t, alias in self.served if t >= moment}
