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
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field, replace

from django.core.exceptions import ImproperlyConfigured

from . import metrics, probe
from .conf import Config, get_config
from .probe_connections import ProbeConnections
from .sockets import abort_connections

logger = logging.getLogger("dbrouting")

OK, DOWN, LAGGING, PROMOTED, NOT_STREAMING, REJOINING, FOREIGN, UNKNOWN = (
    "ok", "down", "lagging", "promoted", "not_streaming", "rejoining", "foreign", "unknown",
)  # fmt: skip


@dataclass(frozen=True)
class ReplicaHealth:
    """What the cache knows of one replica. ``window_*`` are the worst of the last
    ``REJOIN_AFTER_CHECKS`` probes: a replica leaves at one bad probe and rejoins after that
    many good ones, whatever the tolerance asked."""

    alias: str
    state: str = UNKNOWN
    reason: str | None = "not probed yet"
    available: bool = False  # reachable, in recovery, receiving WAL (with hysteresis)
    in_recovery: bool | None = None
    receiving: bool | None = None
    replay_lsn: int | None = None
    receive_lsn: int | None = None
    primary_lsn: int | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    window_lag_bytes: int | None = None
    window_lag_seconds: float | None = None
    checked_at: float | None = None  # time.time() of the last probe
    measured_at: float | None = None  # time.monotonic() when that probe began
    probe_seconds: float | None = None
    good_streak: int = 0

    def usable(
        self, max_staleness: float, max_lag_bytes: int | None, now: float | None = None, max_age: float | None = None
    ) -> bool:
        """Fit to serve reads at most ``max_staleness`` seconds stale.

        With ``now`` (monotonic), a replica that was behind at its last probe is taken to have
        fallen further behind since; a snapshot older than ``max_age`` (the prober stalled) is
        not trusted at all.
        """
        if not self.available or self.window_lag_seconds is None:
            return False
        lag = self.window_lag_seconds
        if now is not None and self.measured_at is not None:
            age = max(0.0, now - self.measured_at)
            if max_age is not None and age > max_age:
                return False
            if self.lag_seconds:
                lag += age
        if lag > max_staleness:
            return False
        return max_lag_bytes is None or (self.window_lag_bytes or 0) <= max_lag_bytes


@dataclass
class _Track:
    """Per-replica memory between probes (private to the probing thread)."""

    caught_up_at: float | None = None  # monotonic time of the primary position last replayed
    last_replay: int | None = None
    skew: float = 0.0  # replica clock minus primary clock, seconds
    marked_down_at: float = 0.0  # monotonic time of the last mark_down by a failing request
    lag_seconds: deque[float] = field(default_factory=deque)
    lag_bytes: deque[int] = field(default_factory=deque)
    ever_left: bool = False


def _replay_age(result: probe.ReplicaProbe, primary: probe.PrimaryProbe, track: _Track) -> float | None:
    """Seconds since the last replayed commit, on the primary's clock (the replica's may differ)."""
    if result.replay_age_seconds is None:
        return None
    if primary.ok and primary.clock is not None and result.clock is not None:
        apart = (result.started + result.duration / 2) - (primary.started + primary.duration / 2)
        track.skew = (result.clock - primary.clock) - apart
    return max(0.0, result.replay_age_seconds - track.skew)


def assess(
    previous: ReplicaHealth,
    track: _Track,
    result: probe.ReplicaProbe,
    primary: probe.PrimaryProbe,
    config: Config,
    last_primary_lsn: int | None = None,
) -> ReplicaHealth:
    """The new health of a replica from its probe and the primary's (pure but for ``track``).

    ``last_primary_lsn`` is the primary's position at its last successful probe, the reference
    when this round's primary probe failed: a failed probe does not mean nothing is committing.
    """
    now = time.time()
    foreign = (
        result.ok
        and primary.ok
        and None not in (result.system_identifier, primary.system_identifier)
        and result.system_identifier != primary.system_identifier
    )
    if not result.ok or not result.in_recovery or foreign:
        track.lag_seconds.clear()
        track.lag_bytes.clear()
        track.ever_left = True
        track.caught_up_at = track.last_replay = None
        if not result.ok:
            state, reason = DOWN, result.error
        elif foreign:
            state, reason = FOREIGN, "not a standby of this primary (another cluster's system identifier)"
        else:
            state, reason = PROMOTED, "not in recovery: promoted"
        return replace(
            ReplicaHealth(result.alias, state=state, reason=reason, in_recovery=result.in_recovery),
            checked_at=now,
            measured_at=result.started,
            probe_seconds=result.duration,
            replay_lsn=result.replay_lsn,
        )
    receiving = result.wal_receiver_status == "streaming"
    replay = result.replay_lsn or 0
    if track.last_replay is not None and replay < track.last_replay:
        track.caught_up_at = None  # it went back (a restore, another server): forget what it had
    track.last_replay = replay
    fresh = primary.ok and primary.lsn is not None
    reference = primary.lsn if fresh else last_primary_lsn
    lag_bytes = None if reference is None else max(0, reference - replay)
    caught_up = fresh and primary.lsn is not None and replay >= primary.lsn
    # Lag in seconds: zero when it has replayed the primary's position (an idle primary never
    # makes a replica stale); else the tighter of two upper bounds on staleness: time since the
    # last replayed commit, and time since it was last seen at the primary's position.
    if caught_up:
        track.caught_up_at = primary.started
        lag_seconds = 0.0
    else:
        bounds = [b for b in (_replay_age(result, primary, track),) if b is not None]
        if track.caught_up_at is not None:
            bounds.append(time.monotonic() - track.caught_up_at)
        lag_seconds = min(bounds) if bounds else float("inf")
    window = max(1, config.rejoin_after_checks)
    track.lag_seconds.append(lag_seconds)
    track.lag_bytes.append(lag_bytes or 0)
    while len(track.lag_seconds) > window:
        track.lag_seconds.popleft()
        track.lag_bytes.popleft()

    # A replica must be receiving WAL. A receiver that just stopped (a primary restart, a network
    # blip) is given the benefit of its staleness bound: while the replica has replayed all it
    # received and that bound, which keeps growing from when it was last seen at the primary's
    # position, is within the tolerance, it still serves; past it, it is out as not streaming.
    replayed_all = result.receive_lsn is None or replay >= result.receive_lsn
    linked = receiving or caught_up or (replayed_all and lag_seconds <= config.max_staleness_seconds)
    streak = previous.good_streak + 1 if linked else 0
    if not linked:
        track.ever_left = True
    available = linked and (not track.ever_left or streak >= window)
    if available:
        track.ever_left = False
    worst_seconds, worst_bytes = max(track.lag_seconds), max(track.lag_bytes)
    within = worst_seconds <= config.max_staleness_seconds and (
        config.max_lag_bytes is None or worst_bytes <= config.max_lag_bytes
    )
    if not linked:
        state, reason = NOT_STREAMING, f"WAL receiver {result.wal_receiver_status or 'not running'}"
    elif not available:
        state, reason = REJOINING, f"{streak}/{window} good probes"
    elif not within:
        state, reason = LAGGING, f"lag {worst_seconds:.2f} s / {worst_bytes} bytes over the tolerance"
    else:
        state, reason = OK, None
    return ReplicaHealth(
        alias=result.alias,
        state=state,
        reason=reason,
        available=available,
        in_recovery=True,
        receiving=receiving,
        replay_lsn=result.replay_lsn,
        receive_lsn=result.receive_lsn,
        primary_lsn=primary.lsn if fresh else None,
        lag_bytes=lag_bytes,
        lag_seconds=lag_seconds,
        window_lag_bytes=worst_bytes,
        window_lag_seconds=worst_seconds,
        checked_at=now,
        measured_at=result.started,
        probe_seconds=result.duration,
        good_streak=streak,
    )


class HealthCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._round_done = threading.Condition(self._lock)
        self.latest: Mapping[str, ReplicaHealth] = {}  # replaced, never changed: a new object per change
        self._tracks: dict[str, _Track] = {}
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
            track = self._tracks.setdefault(alias, _Track())
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
                track = self._tracks.setdefault(alias, _Track())
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
