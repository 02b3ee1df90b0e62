"""How a probe round asks the nodes: each node probed at most once at a time (single flight), on
the prober's kept connections, each answer awaited for at most the probe timeout."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import replace
from typing import Any

from . import probe
from .conf import Config
from .sockets import ProbeConnections

logger = logging.getLogger("dbrouting")


class Probes:
    def __init__(self) -> None:
        self.kept = ProbeConnections()
        self.forget()

    def forget(self) -> None:
        """After fork, and at first: no pool, no probe in flight, no kept connection of ours."""
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: dict[str, Future[Any]] = {}
        self._primary_since = 0.0  # when the primary's probe in flight began
        self.kept.forget()

    def _submit(self, config: Config, alias: str, fn: Callable[..., Any]) -> bool:
        """Start ``alias``'s probe unless one is still in flight; True if started."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(config.replicas) + 2, thread_name_prefix="dbrouting-probe")
        if alias in self._inflight and not self._inflight[alias].done():
            return False
        self._inflight[alias] = self._pool.submit(fn, alias, config, self.kept)
        return True

    def primary(
        self, config: Config, last: probe.PrimaryProbe | None, hung: Callable[[probe.PrimaryProbe], None],
        last_good: probe.PrimaryProbe | None = None,
    ) -> probe.PrimaryProbe:  # fmt: skip
        """The primary's probe. One outstanding for the connect timeout (a slow one is not a hung
        one) declares the primary hung: ``hung`` is told (it publishes, then cuts the app's
        connections to it; the engine's ``connect`` tries no new one until it answers again):
        requests waiting on it fail within the connect timeout. Until then ``last`` holds."""
        if self._submit(config, config.primary, probe.probe_primary):
            self._primary_since = time.monotonic()
        future = self._inflight[config.primary]
        done, _ = wait_futures([future], timeout=config.probe_timeout_seconds)
        if done:
            result: probe.PrimaryProbe = future.result()
            return _override_kept(result, last_good)
        outstanding = time.monotonic() - self._primary_since
        if outstanding < config.connect_timeout_seconds:  # slow, not (yet) hung: the last verdict holds
            return last or probe.PrimaryProbe(config.primary, False, outstanding, self._primary_since, "slow")
        self.kept.abort(config.primary)
        verdict = probe.PrimaryProbe(
            config.primary, False, outstanding, self._primary_since, f"no answer in {outstanding:.1f} s", True
        )
        hung(verdict)
        return verdict

    def replicas(self, config: Config) -> dict[str, probe.ReplicaProbe]:
        """Every replica's probe, in parallel; one without an answer in time is cut and timed out."""
        timeout = config.probe_timeout_seconds
        for alias in config.replicas:
            self._submit(config, alias, probe.probe_replica)
        started = time.monotonic()
        wait_futures([self._inflight[a] for a in config.replicas], timeout=timeout)
        results = {}
        for alias in config.replicas:
            future = self._inflight[alias]
            if future.done():
                results[alias] = future.result()
                continue
            self.kept.abort(alias)  # free the probing thread: the next round connects anew
            results[alias] = probe.ReplicaProbe(
                alias, ok=False, duration=timeout, started=started, timed_out=True,
                error=f"probe timed out after {timeout:g} s",
            )  # fmt: skip
        return results

    def close(self, wait: bool = True) -> None:
        """Probes in flight end (within their timeouts) before their connections close; without
        ``wait``, those close as the probes end."""
        pool, self._pool, self._inflight = self._pool, None, {}
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)
        self.kept.close_all()


def _override_kept(result: probe.PrimaryProbe, last_good: probe.PrimaryProbe | None) -> probe.PrimaryProbe:
    """An operator's override that could not be read this time (a lock, a timeout) stays as last
    read (never read yet: "primary", the safe side); the failure is logged when it begins."""
    if not result.ok or result.policy_error is None:
        return result
    if last_good is None or last_good.policy_error is None:
        logger.warning("dbrouting: the all-behind policy override is unreadable (%s); the last one read holds",
                       result.policy_error)  # fmt: skip
    if last_good is None:
        return replace(result, policy="primary", policy_until=None)
    return replace(result, policy=last_good.policy, policy_until=last_good.policy_until)
