"""What a probe says of a replica: its state, its lag, and the one ``usable`` predicate.

``assess()`` turns one probe of a replica (and the primary's, taken just before) into its new
``ReplicaHealth``. It is pure: what it must remember between probes (when last caught up, clock
skew, the hysteresis' lag window) rides on the previous health. ``Snapshot``: one probe round."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .conf import Config
from .history import Lags
from .probe import PrimaryProbe, ReplicaProbe

_monotonic = time.monotonic  # a global, not an attribute lookup, on the router's path

OK, DOWN, LAGGING, PROMOTED, NOT_STREAMING, REJOINING, FOREIGN, UNKNOWN = (
    "ok", "down", "lagging", "promoted", "not_streaming", "rejoining", "foreign", "unknown",
)  # fmt: skip


@dataclass(frozen=True)
class ReplicaHealth:
    """What the cache knows of one replica. ``window_*``: the worst of the last ``REJOIN_AFTER_CHECKS``
    probes (a replica leaves at one bad probe, rejoins after that many good, whatever the tolerance)."""

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
    hung: bool = False  # its probe had no answer in time: connections to it are cut
    good_streak: int = 0
    # Memory for the next assessment (not part of what the replica "is").
    caught_up_at: float | None = field(default=None, repr=False, compare=False)  # monotonic
    skew: float = field(default=0.0, repr=False, compare=False)  # replica clock minus primary's
    window: tuple[tuple[float, int], ...] = field(default=(), repr=False, compare=False)  # (s, bytes)
    ever_left: bool = field(default=False, repr=False, compare=False)
    marked_down_at: float = field(default=0.0, repr=False, compare=False)  # by a failing request

    def usable(self, tolerance: float, max_lag_bytes: int | None, stall_limit: float, now: float) -> bool:
        """THE predicate: fit to serve reads at most ``tolerance`` seconds stale at ``now``
        (monotonic). A replica that was behind at its last probe is taken to have fallen further
        behind since, and a snapshot older than ``stall_limit`` (the prober stalled) is not trusted."""
        if not self.available or self.window_lag_seconds is None or self.window_lag_seconds > tolerance:
            return False
        if max_lag_bytes is not None and (self.window_lag_bytes or 0) > max_lag_bytes:
            return False
        return now <= self.usable_until(tolerance, stall_limit)

    def within_ceiling(self, config: Config, now: float) -> bool:
        """Fit for the stale reads of an all-behind policy: up, within ``MAX_STALENESS_HARD_SECONDS``."""
        return self.usable(config.max_staleness_hard_seconds, None, config.stall_limit, now)

    def staleness(self, now: float) -> float:
        """Its reads' staleness bound at ``now``: its lag, grown since a probe that found it behind."""
        lag = math.inf if self.window_lag_seconds is None else self.window_lag_seconds
        return lag + max(0.0, now - self.measured_at) if self.lag_seconds and self.measured_at is not None else lag

    def usable_until(self, tolerance: float, stall_limit: float) -> float:
        """The monotonic time after which the snapshot's age alone makes this replica unfit."""
        if self.measured_at is None:
            return math.inf
        until = self.measured_at + stall_limit
        if self.lag_seconds and self.window_lag_seconds is not None:
            until = min(until, self.measured_at + tolerance - self.window_lag_seconds)
        return until


class Snapshot:
    """Every replica's health after a probe round (or a ``mark_down``), and the primary's probe.
    Never changed; its usable replicas under the default tolerance are kept until its age says not."""

    def __init__(
        self, replicas: Mapping[str, ReplicaHealth] | None = None, primary: PrimaryProbe | None = None,
        last_good: PrimaryProbe | None = None,  # the primary's last successful probe
        history: Lags | None = None,  # each replica's recent lag (dbrouting.history), drawn for people
    ) -> None:  # fmt: skip
        self.replicas: Mapping[str, ReplicaHealth] = replicas or {}
        self.primary, self.last_good, self.history = primary, last_good, history or {}
        self.primary_up = primary is None or primary.ok  # not probed yet counts as up
        # The usable replicas under the default tolerance: for which settings they were worked
        # out, until when (monotonic) they hold without a new probe, and which they are. One
        # tuple, replaced whole: a reader in another thread never sees parts of two answers.
        self.default_usable: tuple[Config | None, float, Mapping[str, ReplicaHealth]] = (None, -math.inf, {})

    def usable(self, config: Config, tolerance: float | None = None) -> Mapping[str, ReplicaHealth]:
        """The replicas (alias -> health, in ``REPLICAS`` order) fit to serve reads now under
        ``tolerance`` (default: the configured one, or degraded mode's while the primary is
        unreachable, where only the freshest replicas serve): what the router, the gauge, the
        status command and the admin page all ask. Under the default tolerance the answer is
        recorded here with until when it holds without a new probe (``default_usable``)."""
        now = _monotonic()
        at = config.tolerance(self.primary_up) if tolerance is None else tolerance
        found = {
            alias: health
            for alias in config.replicas
            if (health := self.replicas.get(alias)) is not None
            and health.usable(at, config.max_lag_bytes, config.stall_limit, now)
        }
        if found and at != config.max_staleness_seconds and tolerance is None:  # degraded: the freshest
            freshest = min(h.window_lag_seconds or 0.0 for h in found.values())
            found = {
                a: h
                for a, h in found.items()
                if (h.window_lag_seconds or 0.0) - freshest <= config.max_staleness_seconds
            }
        if tolerance is None:
            until = [now + config.stall_limit, *(h.usable_until(at, config.stall_limit) for h in found.values())]
            self.default_usable = (config, min(until), found)
        return found

    def override(self) -> str | None:
        """An operator's policy, as the primary last told it, until it expires (checked here too)."""
        told = self.last_good
        live = told is not None and (told.policy_until is None or time.time() < told.policy_until)
        return told.policy if live and told is not None else None

    def policy(self, config: Config) -> str:
        """The site's ``ALL_BEHIND_POLICY`` in force: the operator's, else the setting."""
        return self.override() or config.all_behind_policy

    def all_behind(self, config: Config) -> bool:
        """Every replica up (one at least) is past the default tolerance, the primary answers."""
        up = any(h.available for a in config.replicas if (h := self.replicas.get(a)) is not None)
        return up and self.primary_up and not self.usable(config)


def marked_down(previous: ReplicaHealth, reason: str) -> ReplicaHealth:
    """The health of a replica a request just saw fail: down until a probe begun later says not."""
    return ReplicaHealth(
        previous.alias, state=DOWN, reason=reason, replay_lsn=previous.replay_lsn, skew=previous.skew,
        ever_left=True, marked_down_at=time.monotonic(),
    )  # fmt: skip


def assess(
    previous: ReplicaHealth, result: ReplicaProbe, primary: PrimaryProbe, config: Config, last_good: PrimaryProbe | None
) -> ReplicaHealth:
    """The new health of a replica from its probe and the primary's (pure).

    ``last_good`` is the primary's last successful probe, the reference when this round's failed:
    its position (a failed probe does not mean nothing is committing), its cluster's identifier.
    """
    left = _not_a_standby(result, primary if primary.ok else last_good)
    if left is not None:
        state, reason = left
        return ReplicaHealth(
            result.alias, state=state, reason=reason, in_recovery=result.in_recovery,
            replay_lsn=result.replay_lsn if result.ok else previous.replay_lsn,  # the last known, when down
            skew=previous.skew, ever_left=True, marked_down_at=previous.marked_down_at, checked_at=time.time(),
            measured_at=result.started, probe_seconds=result.duration, hung=result.timed_out,
        )  # fmt: skip
    health = _lag(previous, result, primary, config, last_good.lsn if last_good is not None else None)
    return _availability(previous, health, result, config)


def _not_a_standby(result: ReplicaProbe, primary: PrimaryProbe | None) -> tuple[str, str | None] | None:
    """(state, reason) of a replica that cannot serve at all (down, promoted, foreign: ``primary``
    is the primary's probe of this round, or its last successful one), else None."""
    if not result.ok:
        return DOWN, result.error
    if not result.in_recovery:
        return PROMOTED, "not in recovery: promoted"
    if primary is None or primary.system_identifier is None:  # fail closed: nothing to compare with
        return FOREIGN, "not verified as a standby of this primary: the primary has not answered yet"
    if result.system_identifier != primary.system_identifier:
        return FOREIGN, "not a standby of this primary (another cluster's system identifier)"
    return None


def _lag(
    previous: ReplicaHealth, result: ReplicaProbe, primary: PrimaryProbe, config: Config, primary_lsn: int | None
) -> ReplicaHealth:
    """Lag in bytes and seconds, and the lag window. Seconds: zero when the replica has replayed
    the primary's position (an idle primary never makes a replica stale); else the tighter of two
    upper bounds: time since the last replayed commit, and time since last seen caught up."""
    replay = result.replay_lsn or 0
    caught_up_at = previous.caught_up_at
    if previous.replay_lsn is not None and replay < previous.replay_lsn:
        caught_up_at = None  # it went back (a restore, another server): forget what it had
    fresh = primary.ok and primary.lsn is not None
    reference = primary.lsn if fresh else primary_lsn
    lag_bytes = None if reference is None else max(0, reference - replay)
    skew = previous.skew
    if fresh and primary.lsn is not None and replay >= primary.lsn:
        caught_up_at, lag_seconds = primary.started, 0.0
    else:
        bounds = []
        if result.replay_age_seconds is not None:
            if primary.ok and primary.clock is not None and result.clock is not None:
                apart = (result.started + result.duration / 2) - (primary.started + primary.duration / 2)
                skew = (result.clock - primary.clock) - apart
            bounds.append(max(0.0, result.replay_age_seconds - skew))  # on the primary's clock
        if caught_up_at is not None:
            bounds.append(time.monotonic() - caught_up_at)
        lag_seconds = min(bounds) if bounds else math.inf
    window = (*previous.window, (lag_seconds, lag_bytes or 0))[-max(1, config.rejoin_after_checks) :]
    return ReplicaHealth(
        result.alias, in_recovery=True, receiving=result.wal_receiver_status == "streaming",
        replay_lsn=result.replay_lsn, receive_lsn=result.receive_lsn, primary_lsn=primary.lsn if fresh else None,
        lag_bytes=lag_bytes, lag_seconds=lag_seconds, window_lag_seconds=max(s for s, _ in window),
        window_lag_bytes=max(b for _, b in window), checked_at=time.time(), measured_at=result.started,
        probe_seconds=result.duration, caught_up_at=caught_up_at, skew=skew, window=window,
        ever_left=previous.ever_left, marked_down_at=previous.marked_down_at,
    )  # fmt: skip


def _availability(
    previous: ReplicaHealth, health: ReplicaHealth, result: ReplicaProbe, config: Config
) -> ReplicaHealth:
    """State and hysteresis. A replica must be receiving WAL; a receiver that just stopped (a
    primary restart, a network blip) is given the benefit of its staleness bound while the
    replica has replayed all it received and that bound is within the tolerance."""
    replay = result.replay_lsn or 0
    caught_up = health.primary_lsn is not None and replay >= health.primary_lsn
    replayed_all = result.receive_lsn is None or replay >= result.receive_lsn
    lag = math.inf if health.lag_seconds is None else health.lag_seconds
    tolerance = config.tolerance(primary_up=health.primary_lsn is not None)
    linked = bool(health.receiving) or caught_up or (replayed_all and lag <= tolerance)
    streak, need = (previous.good_streak + 1 if linked else 0), max(1, config.rejoin_after_checks)
    available = linked and (not (health.ever_left or not linked) or streak >= need)
    health = replace(health, available=available, good_streak=streak, ever_left=not available)
    if not linked:
        return replace(
            health, state=NOT_STREAMING, reason=f"WAL receiver {result.wal_receiver_status or 'not running'}"
        )
    if not available:
        return replace(health, state=REJOINING, reason=f"{streak}/{need} good probes")
    if not health.usable(tolerance, config.max_lag_bytes, math.inf, health.measured_at or 0):
        limit = "" if config.max_lag_bytes is None else f" (limit {config.max_lag_bytes})"
        reason = (
            f"lag {health.window_lag_seconds:.2f} s (tolerance {tolerance:g} s), {health.window_lag_bytes} bytes{limit}"
        )
        return replace(health, state=LAGGING, reason=reason)  # the predicate, at the moment of the probe
    return replace(health, state=OK, reason=None)
