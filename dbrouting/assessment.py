"""What a probe says of a replica: its state, its lag, whether it may serve reads.

``assess()`` turns one probe of a replica (and the primary's, taken just before) into the
replica's new ``ReplicaHealth``; ``Track`` is what it remembers between probes. Pure but for the
track: the health cache (``health.py``) calls it once per replica per round.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field, replace

from . import probe
from .conf import Config

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
        if not self.available or self.window_lag_seconds is None or self.window_lag_seconds > max_staleness:
            return False
        if now is not None and now > self.usable_until(max_staleness, max_age):
            return False
        return max_lag_bytes is None or (self.window_lag_bytes or 0) <= max_lag_bytes

    def usable_until(self, max_staleness: float, max_age: float | None = None) -> float:
        """The monotonic time after which the snapshot's age alone makes this replica unfit
        (``inf``: never): a replica that was behind falls further behind as the snapshot ages,
        and a snapshot older than ``max_age`` (the prober stalled) is not trusted at all."""
        if self.measured_at is None:
            return math.inf
        until = math.inf if max_age is None else self.measured_at + max_age
        if self.lag_seconds and self.window_lag_seconds is not None:
            until = min(until, self.measured_at + max_staleness - self.window_lag_seconds)
        return until


@dataclass
class Track:
    """Per-replica memory between probes (private to the probing thread)."""

    caught_up_at: float | None = None  # monotonic time of the primary position last replayed
    last_replay: int | None = None
    skew: float = 0.0  # replica clock minus primary clock, seconds
    marked_down_at: float = 0.0  # monotonic time of the last mark_down by a failing request
    lag_seconds: deque[float] = field(default_factory=deque)
    lag_bytes: deque[int] = field(default_factory=deque)
    ever_left: bool = False


def _replay_age(result: probe.ReplicaProbe, primary: probe.PrimaryProbe, track: Track) -> float | None:
    """Seconds since the last replayed commit, on the primary's clock (the replica's may differ)."""
    if result.replay_age_seconds is None:
        return None
    if primary.ok and primary.clock is not None and result.clock is not None:
        apart = (result.started + result.duration / 2) - (primary.started + primary.duration / 2)
        track.skew = (result.clock - primary.clock) - apart
    return max(0.0, result.replay_age_seconds - track.skew)


def assess(
    previous: ReplicaHealth,
    track: Track,
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
