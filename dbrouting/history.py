"""Each replica's recent lag, kept for the eye: the admin page's chart and ``replica_status --watch``.

It rides on the snapshot (``Snapshot.history``): the host's prober records each probe round's
verdicts into it, and every process of the host reads the same history from the shared file
(``dbrouting.plane``), whichever gunicorn worker draws the page. It is bounded whatever the probe
interval: ``LAG_HISTORY_SECONDS`` back, in at most ``POINTS`` steps per replica, each step the worst
of the probes in it (a short outage is never averaged away), so the file stays a few kilobytes.
Times are ``time.monotonic()``, as every time in a snapshot (a plane belongs to one boot).
This module imports no other of dbrouting's: the snapshot (``assessment``) holds what it defines.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

POINTS = 120  # per replica: a step of LAG_HISTORY_SECONDS / POINTS (5 s of the default 10 minutes)


@dataclass(frozen=True, slots=True)
class Point:
    """One step of a replica's history."""

    at: float  # monotonic: when the step's first probe began
    lag_seconds: float | None  # the worst measured in the step (None: none measured; inf: no bound)
    usable: bool  # usable after every probe of the step (``Snapshot.usable``: the router's answer)
    down: bool  # a probe of the step found it not serving as a standby at all (no lag measured)


Lags = Mapping[str, tuple[Point, ...]]  # alias -> its steps, oldest first


class Measured(Protocol):
    """What a round says of a replica (``assessment.ReplicaHealth``)."""

    @property
    def lag_seconds(self) -> float | None: ...

    @property
    def measured_at(self) -> float | None: ...


def record(lags: Lags, replicas: Mapping[str, Measured], usable: Collection[str], window: float, now: float) -> Lags:
    """``lags`` with a probe round's verdicts (``usable``: the aliases the round's snapshot finds
    usable): joined to each replica's newest step, or a new step; steps older than ``window``
    seconds before ``now`` (monotonic) left out. A replica the round does not name is dropped."""
    if window <= 0:
        return {}
    step, since = window / POINTS, now - window
    recorded = {}
    for alias, health in replicas.items():
        lag = health.lag_seconds
        at = health.measured_at if health.measured_at is not None else now  # (a mark-down: not measured)
        point = Point(round(at, 3), None if lag is None else round(lag, 3), alias in usable, lag is None)
        kept = [p for p in lags.get(alias, ()) if p.at >= since]
        if kept and point.at - kept[-1].at < step:
            kept[-1] = _worst(kept[-1], point)
        else:
            kept.append(point)
        recorded[alias] = tuple(kept[-POINTS:])
    return recorded


def _worst(step: Point, probe: Point) -> Point:
    lags = [lag for lag in (step.lag_seconds, probe.lag_seconds) if lag is not None]
    return Point(step.at, max(lags) if lags else None, step.usable and probe.usable, step.down or probe.down)


def encode(lags: Lags) -> dict[str, list[list[Any]]]:
    """The history as JSON's lists (compact: a few kilobytes per replica at most)."""
    return {alias: [[p.at, p.lag_seconds, p.usable, p.down] for p in points] for alias, points in lags.items()}


def _number(value: Any, none: bool = False) -> bool:
    if value is None:
        return none
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def decode(raw: Any, now: float) -> Lags:
    """The history in ``raw`` (JSON's); ``ValueError`` unless every step is exactly one, at most
    ``POINTS`` per replica, none in the future (``now``: monotonic)."""
    if not isinstance(raw, dict):
        raise ValueError("history")
    lags = {}
    for alias, points in raw.items():
        if not isinstance(points, list) or len(points) > POINTS:
            raise ValueError("history: too many steps")
        steps = []
        for p in points:
            if not (isinstance(p, list) and len(p) == 4 and _number(p[0]) and _number(p[1], none=True)):
                raise ValueError("history: a step")
            if not (isinstance(p[2], bool) and isinstance(p[3], bool)) or p[0] > now + 1.0 or not math.isfinite(p[0]):
                raise ValueError("history: a step")
            steps.append(Point(float(p[0]), None if p[1] is None else float(p[1]), p[2], p[3]))
        lags[str(alias)] = tuple(steps)
    return lags
