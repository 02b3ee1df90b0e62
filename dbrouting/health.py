"""The health cache: one snapshot per replica, refreshed off the request path.

A daemon thread per process (started lazily, restarted after ``fork``) probes the primary, then
every replica in parallel, once per ``CHECK_INTERVAL_SECONDS``; requests only read the last
snapshot from memory. A probe that has not answered within ``PROBE_TIMEOUT_SECONDS`` marks its
replica down, and a replica whose previous probe still hangs is not probed again (single flight).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures

from django.core.exceptions import ImproperlyConfigured

from . import metrics, probe
from .assessment import (
    DOWN,
    FOREIGN,
    LAGGING,
    NOT_STREAMING,
    OK,
    PROMOTED,
    UNKNOWN,
    ReplicaHealth,
    Track,
    assess,
)
from .conf import get_config
from .probe_connections import ProbeConnections
from .sockets import abort_connections

logger = logging.getLogger("dbrouting")


class HealthCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._round_done = threading.Condition(self._lock)
        self.latest: Mapping[str, ReplicaHealth] = {}  # replaced, never changed: a new object per change
        self._tracks: dict[str, Track] = {}
        self._inflight: dict[str, Future[probe.ReplicaProbe]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pid = os.getpid()
        self.rounds = 0
        self.primary: probe.PrimaryProbe | None = None
        self._last_primary_lsn: int | None = None
        self._kept = ProbeConnections()

    # -- reading (request path: memory only) ----------------------------------------

    def snapshot(self) -> Mapping[str, ReplicaHealth]:
        if self._thread is None:  # reset at fork, at reset() and when the prober ends
            self._ensure_running()
        return self.latest

    def mark_down(self, alias: str, reason: str) -> None:
        """A request saw ``alias`` fail: stop routing to it now, before the next probe."""
        with self._lock:
            current = self.latest.get(alias, ReplicaHealth(alias))
            if current.state != DOWN:
                logger.warning("replica %s is down (%s): reads go elsewhere", alias, reason)
            self.latest = {**self.latest, alias: ReplicaHealth(alias, state=DOWN, reason=reason)}
            metrics.replica_usable.labels(alias).set(0)
            track = self._tracks.setdefault(alias, Track())
            track.ever_left = True
            track.marked_down_at = time.monotonic()

    # -- probing (background thread) -----------------------------------------------------

    def _ensure_running(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        if self._pid != os.getpid():  # a forked child: the parent's threads did not follow it
            self._after_fork()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="dbrouting-health", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if self._thread is threading.current_thread():
                self._thread = None
                # A new snapshot object, same contents: routers holding a route table for the
                # old one ask snapshot() again, which starts a new prober.
                self.latest = dict(self.latest)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.refresh()
            except RuntimeError:  # the interpreter is exiting: thread pools refuse new work
                return
            except ImproperlyConfigured as exc:  # reported by `manage.py check`; retry after a pause
                logger.error("dbrouting: cannot probe replicas: %s", exc)
            except Exception:  # never let the prober die: log and carry on
                logger.exception("dbrouting: health probe round failed")
            try:
                interval = get_config().check_interval_seconds
            except ImproperlyConfigured:
                interval = 1.0
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def refresh(self) -> Mapping[str, ReplicaHealth]:
        """Probe the primary, then every replica in parallel; publish the new snapshot."""
        config = get_config()
        timeout = config.probe_timeout_seconds
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(config.replicas) + 2, thread_name_prefix="dbrouting-probe")
        primary_future = self._pool.submit(
            probe.probe_primary, config.primary, config.connect_timeout_seconds, timeout, self._kept
        )
        done, _ = wait_futures([primary_future], timeout=timeout)
        started = time.monotonic()
        if not done:
            self._kept.abort(config.primary)
        primary = (
            primary_future.result()
            if done
            else probe.PrimaryProbe(config.primary, ok=False, duration=timeout, started=started, error="timed out")
        )
        self.primary = primary
        if primary.ok and primary.lsn is not None:
            self._last_primary_lsn = primary.lsn
        for alias in config.replicas:
            if alias not in self._inflight or self._inflight[alias].done():
                self._inflight[alias] = self._pool.submit(
                    probe.probe_replica, alias, config.connect_timeout_seconds, timeout, self._kept
                )
        wait_futures([self._inflight[a] for a in config.replicas], timeout=timeout)
        results = {}
        for alias in config.replicas:
            future = self._inflight[alias]
            if future.done():
                results[alias] = future.result()
            else:
                self._kept.abort(alias)  # free the probing thread: the next round connects anew
                results[alias] = probe.ReplicaProbe(
                    alias, ok=False, duration=timeout, started=started - timeout, timed_out=True,
                    error=f"probe timed out after {timeout:g} s",
                )  # fmt: skip
        with self._lock:
            snapshot = {}
            for alias, result in results.items():
                previous = self.latest.get(alias, ReplicaHealth(alias))
                track = self._tracks.setdefault(alias, Track())
                if result.started < track.marked_down_at:
                    # Began before a request saw it fail: too old to readmit it.
                    snapshot[alias] = previous
                    continue
                health = assess(previous, track, result, primary, config, self._last_primary_lsn)
                _log_transition(previous, health)
                snapshot[alias] = health
            self.latest = snapshot
            metrics.observe_round(snapshot, results, config.max_staleness_seconds, config.max_lag_bytes)
            metrics.flush_reads()
            self.rounds += 1
            self._round_done.notify_all()
        for alias, result in results.items():
            if result.timed_out:
                abort_connections(alias)  # queries stuck on a hung replica fail over now
        return snapshot

    def wait_for_rounds(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Block until ``count`` more probe rounds have completed (for tests and tools)."""
        self._ensure_running()
        with self._lock:
            target = self.rounds + count
            return self._round_done.wait_for(lambda: self.rounds >= target, timeout=timeout)

    def reset(self) -> None:
        """Stop probing and forget everything (tests, settings changes)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        with self._lock:
            self._forget()
        self._kept.close_all()

    def _forget(self) -> None:
        """Everything learnt about the nodes, and the prober thread's handle."""
        self._thread = None
        self.latest = {}
        self._tracks = {}
        self._inflight = {}
        self.primary = None
        self._last_primary_lsn = None

    def _after_fork(self) -> None:
        self._pid = os.getpid()
        self._pool = None
        self._forget()
        self._kept.forget()
        self._lock = threading.Lock()
        self._round_done = threading.Condition(self._lock)


def _log_transition(previous: ReplicaHealth, current: ReplicaHealth) -> None:
    if previous.state == current.state:
        return
    if current.state == OK:
        if previous.state == UNKNOWN:
            logger.debug("replica %s is usable", current.alias)
        else:
            logger.info("replica %s is usable again", current.alias)
    elif current.state == PROMOTED:
        logger.error("replica %s is no longer in recovery (promoted?): no reads go to it", current.alias)
    elif current.state == FOREIGN:
        logger.error("replica %s is not a standby of the primary (another cluster): no reads go to it", current.alias)
    elif current.state in (DOWN, LAGGING, NOT_STREAMING):
        logger.warning("replica %s is %s (%s): no reads go to it", current.alias, current.state, current.reason)


cache = HealthCache()
os.register_at_fork(after_in_child=lambda: cache._after_fork())


def replica_health() -> Mapping[str, ReplicaHealth]:
    """The health cache's current view of every replica, from memory."""
    return cache.snapshot()
