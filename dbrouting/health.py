"""The health cache and the one probe round, off the request path.

A daemon thread per process (started lazily, restarted after ``fork``) either probes the primary,
then every replica in parallel, once per ``CHECK_INTERVAL_SECONDS`` (give or take a fifth, so that
a fleet does not probe in step), or, when another process of the host probes (``plane``), copies
its newest snapshot; requests only read the last ``Snapshot`` from memory. A probe that has not
answered within ``PROBE_TIMEOUT_SECONDS`` marks its replica down, and a replica whose previous probe
still hangs is not probed again (single flight). ``replica_status`` and the admin page report this
same cache, after a fresh round.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from . import history, metrics, probe
from .assessment import DOWN, ReplicaHealth, Snapshot, assess, marked_down
from .conf import Config, get_config
from .exceptions import SettingError
from .plane import Plane, where
from .rounds import Probes
from .snapshots import merge
from .sockets import abort_connections

logger = logging.getLogger("dbrouting")


class HealthCache:
    def __init__(self) -> None:
        self.latest = Snapshot()  # replaced, never changed: a new object per change
        self.rounds = 0
        self.last_error: str | None = None  # of the last probe round that failed as a whole
        self._probes = Probes()
        self._after_fork()

    def _after_fork(self) -> None:
        """Forget everything learnt, and the threads (a forked child has none of its parent's)."""
        self._lock = threading.Lock()
        self._round_done = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self.latest = Snapshot()
        self._probes.forget()
        if getattr(self, "_plane", None) is not None:  # (not yet at __init__)
            self._plane.forget()  # type: ignore[union-attr]
        self._plane: Plane | None = None
        self._plane_retry_at = 0.0  # after the runtime folder failed: alone until then
        self._probing = False  # probed in its last turn (the prober, or a stand-in)
        self._behind = False  # no replica within the tolerance, as last logged
        self._place: tuple[Path, str] | None = None

    # -- reading (request path: memory only) ----------------------------------------

    def snapshot(self) -> Snapshot:
        if self._thread is None:  # reset at fork, at reset() and when the prober ends
            self._ensure_running()
        return self.latest

    def mark_down(self, alias: str, reason: str) -> None:
        """A request saw ``alias`` fail: stop routing to it now, before the next probe."""
        with self._lock:
            current = self.latest.replicas.get(alias, ReplicaHealth(alias))
            if current.state == DOWN and time.monotonic() - current.marked_down_at < 0.5:
                return  # just marked down, by another request: the host knows
            if current.state != DOWN:
                logger.warning("replica %s is down (%s): reads go elsewhere", alias, reason)
            self._publish({**self.latest.replicas, alias: marked_down(current, reason)}, mark_down=True)

    def _publish(self, replicas: dict[str, ReplicaHealth], primary: probe.PrimaryProbe | None = None,
                 mark_down: bool = False, config: Config | None = None) -> None:  # fmt: skip
        """A new snapshot (with the lock held), shared with the host; the gauges follow it. A probe
        round's (``config``: its settings) joins its verdicts to the lag history (``history``)."""
        last = self.latest
        if primary is not None:
            with contextlib.suppress(ImproperlyConfigured):
                metrics.log_primary(last.primary, primary, get_config())
        primary = primary or last.primary
        last_good = primary if primary is not None and primary.ok else last.last_good
        self.latest = Snapshot(replicas, primary, last_good, last.history)
        if config is not None:  # usable: this snapshot's answer, the router's
            lags = history.record(last.history, replicas, self.latest.usable(config), config.lag_history_seconds,
                                  time.monotonic())  # fmt: skip
            self.latest = Snapshot(replicas, primary, last_good, lags)
        if self._plane is not None:  # (a mark-down: the whole host leaves the replica now)
            try:
                self.latest = self._plane.publish(self.latest, mark_down)
            except OSError as exc:  # never on a request: this process goes on alone a while
                self._drop_plane(exc)
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
                    config = get_config()
                    plane = self._plane_for(config)
                    if plane is None or plane.lead() or plane.stand_in(config):
                        self._probing = True
                        self.refresh()
                        interval = config.check_interval_seconds * random.uniform(0.8, 1.2)  # noqa: S311
                    else:
                        if self._probing:  # stepped down: the prober's connections go
                            self._probing = False
                            self._probes.close(wait=False)
                        self._follow(plane)
                        interval = min(0.05, config.check_interval_seconds / 4)
                except OSError as exc:  # the runtime folder failed (removed, full, read-only)
                    self._drop_plane(exc)
                except RuntimeError as exc:
                    if "shutdown" in str(exc):  # the interpreter is exiting: thread pools refuse new work
                        return
                    self.last_error = probe.describe(exc)
                    logger.exception("dbrouting: health probe round failed")
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

    def _plane_for(self, config: Config) -> Plane | None:
        """The host's plane these settings share, or None (``PROBE_SCOPE`` "process", or a
        runtime folder that cannot be used: then this process probes on its own)."""
        place = where(config) if time.monotonic() >= self._plane_retry_at else None
        if place != self._place:
            if self._plane is not None:
                self._plane.release()
            self._plane, self._place = None, place
            try:
                self._plane = None if place is None else Plane(*place)
            except SettingError as exc:  # (its system check says so too)
                logger.error("dbrouting: %s; this process probes on its own", exc)
        return self._plane

    def _drop_plane(self, exc: OSError) -> None:
        """The runtime folder failed: probe alone, and try the plane again in a minute."""
        if self._plane is not None:
            logger.error("dbrouting: the host's runtime folder failed (%s); this process probes on its own for a "
                         "minute", probe.describe(exc))  # fmt: skip
            with contextlib.suppress(OSError):
                self._plane.release()
        self._plane, self._place, self._plane_retry_at = None, None, time.monotonic() + 60

    def _follow(self, plane: Plane) -> None:
        """Copy the host's newest snapshot; cut this process's connections to the nodes it finds
        newly down or hung, as the prober did to its own."""
        shared = plane.read()
        if shared is None:
            return
        with self._lock:
            previous, self.latest = self.latest, merge(shared, self.latest)
            with contextlib.suppress(ImproperlyConfigured):
                metrics.observe_snapshot(self.latest, get_config())
            self.rounds += 1
            self._round_done.notify_all()
        for alias, health in self.latest.replicas.items():
            if health.hung and not previous.replicas.get(alias, health).hung:
                abort_connections(alias)
        primary = self.latest.primary
        if primary is not None and primary.timed_out and primary != previous.primary:
            abort_connections(primary.alias)

    def refresh(self) -> Snapshot:
        """THE probe round: the primary, then every replica in parallel; publish the new snapshot."""
        config = get_config()
        if self._plane is not None:
            self._plane.beat()  # alive, before each stage (each up to a probe timeout)
        primary = self._probes.primary(config, self.latest.primary, self._primary_hung, self.latest.last_good)
        if self._plane is not None:
            self._plane.beat()
        results = self._probes.replicas(config)
        with self._lock:
            if self._plane is not None and (shared := self._plane.read(changed_only=False)) is not None:
                self.latest = merge(self.latest, shared)  # the host's mark-downs, hysteresis included
            replicas = {}
            for alias, result in results.items():
                previous = self.latest.replicas.get(alias, ReplicaHealth(alias))
                if result.started < previous.marked_down_at:
                    replicas[alias] = previous  # began before a request saw it fail: too old to readmit it
                    continue
                replicas[alias] = assess(previous, result, primary, config, self.latest.last_good)
                metrics.log_transition(previous, replicas[alias])
            before = self.latest
            self._publish(replicas, primary, config=config)
            self._behind = metrics.log_all_behind(self._behind, before, self.latest, config)
            metrics.observe_probes(results.values())
            self.rounds += 1
            self._round_done.notify_all()
        for alias, result in results.items():
            if result.timed_out:
                abort_connections(alias)  # queries stuck on a hung replica fail over now
        return self.latest

    def _primary_hung(self, hung: probe.PrimaryProbe) -> None:
        """Published before the app's connections to it are cut: those must not connect again."""
        with self._lock:
            self._publish(dict(self.latest.replicas), hung)
        abort_connections(hung.alias)

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
            self._thread = None
            self.latest = Snapshot()
            if self._plane is not None:
                self._plane.release()
            self._plane, self._place, self._plane_retry_at = None, None, 0.0
        self._probes.close()


cache = HealthCache()
os.register_at_fork(after_in_child=lambda: cache._after_fork())
