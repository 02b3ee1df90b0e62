"""The health cache and the one probe round, off the request path.

A daemon thread per process (started lazily, restarted after ``fork``) probes the primary, then
every replica in parallel, once per ``CHECK_INTERVAL_SECONDS``; requests only read the last
``Snapshot`` from memory. A probe that has not answered within ``PROBE_TIMEOUT_SECONDS`` marks
its replica down, and a replica whose previous probe still hangs is not probed again (single
flight). ``replica_status`` and the admin page report this same cache, after a fresh round.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from . import metrics, probe
from .assessment import DOWN, FOREIGN, OK, PROMOTED, UNKNOWN, ReplicaHealth, Snapshot, assess, marked_down
from .conf import Config, get_config
from .sockets import ProbeConnections, abort_connections

logger = logging.getLogger("dbrouting")


class HealthCache:
    def __init__(self) -> None:
        self.latest = Snapshot()  # replaced, never changed: a new object per change
        self.rounds = 0
        self.last_error: str | None = None  # of the last probe round that failed as a whole
        self._kept = ProbeConnections()
        self._after_fork()

    def _after_fork(self) -> None:
        """Forget everything learnt, and the threads (a forked child has none of its parent's)."""
        self._lock = threading.Lock()
        self._round_done = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._pid = os.getpid()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._inflight: dict[str, Future[Any]] = {}
        self._primary_since = 0.0  # when the primary's probe in flight began
        self.latest = Snapshot()
        self._kept.forget()

    # -- reading (request path: memory only) ----------------------------------------

    def snapshot(self) -> Snapshot:
        if self._thread is None:  # reset at fork, at reset() and when the prober ends
            self._ensure_running()
        return self.latest

    def mark_down(self, alias: str, reason: str) -> None:
        """A request saw ``alias`` fail: stop routing to it now, before the next probe."""
        with self._lock:
            current = self.latest.replicas.get(alias, ReplicaHealth(alias))
            if current.state != DOWN:
                logger.warning("replica %s is down (%s): reads go elsewhere", alias, reason)
            self._publish({**self.latest.replicas, alias: marked_down(current, reason)})

    def _publish(self, replicas: dict[str, ReplicaHealth], primary: probe.PrimaryProbe | None = None) -> None:
        """A new snapshot (with the lock held); the gauges follow it."""
        last = self.latest
        if primary is not None:
            with contextlib.suppress(ImproperlyConfigured):
                _log_primary(last.primary, primary, get_config())
        primary = primary or last.primary
        self.latest = Snapshot(replicas, primary, primary if primary is not None and primary.ok else last.last_good)
        with contextlib.suppress(ImproperlyConfigured):  # reported by the prober's round
            metrics.observe_snapshot(self.latest, get_config())

    # -- probing (background thread) -----------------------------------------------------

    def _ensure_running(self) -> None:
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="dbrouting-health", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started, interval = time.monotonic(), 1.0
                try:
                    self.refresh()
                    interval = get_config().check_interval_seconds
                except RuntimeError:  # the interpreter is exiting: thread pools refuse new work
                    return
                except ImproperlyConfigured as exc:  # reported by `manage.py check`; retry after a pause
                    self.last_error = str(exc)
                    logger.error("dbrouting: cannot probe replicas: %s", exc)
                except Exception as exc:  # never let the prober die: log and carry on
                    self.last_error = probe.describe(exc)
                    logger.exception("dbrouting: health probe round failed")
                self._stop.wait(max(0.0, interval - (time.monotonic() - started)))
        finally:
            if self._thread is threading.current_thread():
                self._thread = None

    def refresh(self) -> Snapshot:
        """THE probe round: the primary, then every replica in parallel; publish the new snapshot."""
        config = get_config()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(config.replicas) + 2, thread_name_prefix="dbrouting-probe")
        primary = self._probe_primary(config, self._pool)
        results = self._probe_replicas(config, self._pool)
        with self._lock:
            replicas = {}
            for alias, result in results.items():
                previous = self.latest.replicas.get(alias, ReplicaHealth(alias))
                if result.started < previous.marked_down_at:
                    replicas[alias] = previous  # began before a request saw it fail: too old to readmit it
                    continue
                replicas[alias] = assess(previous, result, primary, config, self.latest.last_good)
                _log_transition(previous, replicas[alias])
            self._publish(replicas, primary)
            metrics.observe_probes(results.values())
            self.rounds += 1
            self._round_done.notify_all()
        for alias, result in results.items():
            if result.timed_out:
                abort_connections(alias)  # queries stuck on a hung replica fail over now
        return self.latest

    def _probe_primary(self, config: Config, pool: ThreadPoolExecutor) -> probe.PrimaryProbe:
        """The primary's probe, single flight as the replicas'. A probe outstanding for the connect
        timeout (a slow one is not a hung one) declares the primary hung: published first, then
        the app's connections to it are cut, and no new one is tried until it answers again (the
        engine's ``connect``): requests waiting on it fail within the connect timeout."""
        future = self._inflight.get(config.primary)
        if future is None or future.done():
            future = pool.submit(probe.probe_primary, config.primary, config, self._kept)
            self._inflight[config.primary] = future
            self._primary_since = time.monotonic()
        done, _ = wait_futures([future], timeout=config.probe_timeout_seconds)
        if done:
            result: probe.PrimaryProbe = future.result()
            return result
        outstanding = time.monotonic() - self._primary_since
        if outstanding < config.connect_timeout_seconds:  # slow, not (yet) hung: the last verdict holds
            last = self.latest.primary
            return last or probe.PrimaryProbe(config.primary, False, outstanding, self._primary_since, "slow")
        self._kept.abort(config.primary)
        hung = probe.PrimaryProbe(
            config.primary, False, outstanding, self._primary_since, f"no answer in {outstanding:.1f} s", True
        )
        with self._lock:  # published before the cut: the requests cut off must not connect again
            self._publish(dict(self.latest.replicas), hung)
        abort_connections(config.primary)
        return hung

    def _probe_replicas(self, config: Config, pool: ThreadPoolExecutor) -> dict[str, probe.ReplicaProbe]:
        timeout = config.probe_timeout_seconds
        for alias in config.replicas:
            if alias not in self._inflight or self._inflight[alias].done():
                self._inflight[alias] = pool.submit(probe.probe_replica, alias, config, self._kept)
        started = time.monotonic()
        wait_futures([self._inflight[a] for a in config.replicas], timeout=timeout)
        results = {}
        for alias in config.replicas:
            future = self._inflight[alias]
            if future.done():
                results[alias] = future.result()
                continue
            self._kept.abort(alias)  # free the probing thread: the next round connects anew
            results[alias] = probe.ReplicaProbe(
                alias, ok=False, duration=timeout, started=started, timed_out=True,
                error=f"probe timed out after {timeout:g} s",
            )  # fmt: skip
        return results

    def wait_for_rounds(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Block until ``count`` more probe rounds have completed (for tests and tools)."""
        self._ensure_running()
        with self._lock:
            target = self.rounds + count
            return self._round_done.wait_for(lambda: self.rounds >= target, timeout=timeout)

    def fresh_snapshot(self, config: Config) -> Snapshot:
        """The snapshot of a round begun after this call (``replica_status``): the prober's own
        round, through the same assessment and hysteresis. A process with no history yet waits
        until the lag window holds only probes made with history (``REJOIN_AFTER_CHECKS`` + 1
        rounds): a first probe on an idle primary can only bound lag by the last commit's age.
        Raises ``TimeoutError`` when the rounds do not complete within their timeouts."""
        rounds = 2 if self.rounds else config.rejoin_after_checks + 1
        limit = rounds * (config.check_interval_seconds + 2 * config.probe_timeout_seconds) + config.connect_timeout + 1
        if not self.wait_for_rounds(rounds, timeout=limit):
            cause = f": {self.last_error}" if self.last_error else ""
            raise TimeoutError(f"no probe round completed within {limit:.0f} s{cause}")
        return self.snapshot()

    def reset(self) -> None:
        """Stop probing and forget everything (tests, settings changes)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        with self._lock:
            self._thread = None
            self._inflight = {}
            self.latest = Snapshot()
            pool, self._pool = self._pool, None
        if pool is not None:  # probes in flight end (within their timeouts) before their connections close
            pool.shutdown(wait=True, cancel_futures=True)
        self._kept.close_all()


def _log_primary(previous: probe.PrimaryProbe | None, current: probe.PrimaryProbe, config: Config) -> None:
    """The start and the end of an outage of the primary, once each."""
    if current.ok == (previous is None or previous.ok):
        return
    if current.ok:
        logger.warning("primary %s reachable again: writes work, normal lag rules apply", current.alias)
    elif config.primary_outage_max_staleness_seconds:
        logger.error("primary %s unreachable (%s): degraded mode, reads on replicas up to %g s stale, "
                     "writes fail", current.alias, current.error, config.tolerance(primary_up=False))  # fmt: skip
    else:
        logger.error("primary %s unreachable (%s): writes and reads fail", current.alias, current.error)


def _log_transition(previous: ReplicaHealth, current: ReplicaHealth) -> None:
    if previous.state == current.state:
        return
    if current.state == OK:
        level = logging.DEBUG if previous.state == UNKNOWN else logging.INFO
        logger.log(level, "replica %s is usable%s", current.alias, "" if previous.state == UNKNOWN else " again")
    elif current.state in (PROMOTED, FOREIGN):
        logger.error("replica %s is %s (%s): no reads go to it", current.alias, current.state, current.reason)
    else:
        logger.warning("replica %s is %s (%s): no reads go to it", current.alias, current.state, current.reason)


cache = HealthCache()
os.register_at_fork(after_in_child=lambda: cache._after_fork())
