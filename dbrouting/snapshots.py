"""The snapshot file of a host's plane (``dbrouting.plane``): JSON whose every field is checked
against its declared type on the way in (a file is data, never code: no pickle), and how a
process's snapshot and the shared one merge their mark-downs and their lag histories."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from . import history
from .assessment import DOWN, ReplicaHealth, Snapshot
from .conf import ALL_BEHIND_POLICIES
from .probe import PrimaryProbe

SCHEMA = 3  # of the file; part of the plane's key, so that two versions never share a plane


# A mark-down older than this is history, not news: a probe has spoken since, or no one probes
# (a file left by processes long gone: a new prober starts from what it sees, and says so).
MARK_DOWN_NEWS_SECONDS = 60.0


def merge(mine: Snapshot, theirs: Snapshot) -> Snapshot:
    """``mine`` with each replica another process marked down, lately, since ``mine`` last
    measured it; with ``theirs``' lag history and last good primary probe when ``mine`` has none
    (a prober that starts, the app restarted say, carries the host's on: both are of this boot,
    and the primary's identifier is what a replica is checked against while the primary is away)."""
    replicas = dict(mine.replicas)
    now = time.monotonic()
    for alias, health in theirs.replicas.items():
        own = replicas.get(alias)
        news = health.state == DOWN and now - health.marked_down_at < MARK_DOWN_NEWS_SECONDS
        if news and (own is None or health.marked_down_at > max(own.marked_down_at, own.measured_at or 0.0)):
            replicas[alias] = health
    adopt = not mine.history and bool(theirs.history)
    last_good = mine.last_good or theirs.last_good
    if replicas == dict(mine.replicas) and not adopt and last_good is mine.last_good:
        return mine
    return Snapshot(replicas, mine.primary, last_good, theirs.history if adopt else mine.history)


def encode(snapshot: Snapshot) -> bytes:
    def probe(p: PrimaryProbe | None) -> dict[str, Any] | None:
        return None if p is None else dataclasses.asdict(p)

    return json.dumps({
        "schema": SCHEMA,
        "replicas": {alias: dataclasses.asdict(h) for alias, h in snapshot.replicas.items()},
        "primary": probe(snapshot.primary),
        "last_good": probe(snapshot.last_good),
        "history": history.encode(snapshot.history),
    }).encode()  # fmt: skip


_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "None": (type(None),)}


def _typed(cls: Any, raw: Any) -> Any:
    """``cls(**raw)`` when every field has its declared type, and no time lies in the future."""
    if not isinstance(raw, dict) or set(raw) != {f.name for f in dataclasses.fields(cls)}:
        raise ValueError(f"not a {cls.__name__}")
    for f in dataclasses.fields(cls):
        value = raw[f.name]
        if f.name == "window":
            if not isinstance(value, list) or not all(isinstance(w, list) and len(w) == 2 for w in value):
                raise ValueError("window")
            raw[f.name] = value = tuple((float(s), int(b)) for s, b in value)
            continue
        allowed = tuple(t for name in str(f.type).split(" | ") for t in _TYPES[name])
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ValueError(f"{cls.__name__}.{f.name}")
    now = time.monotonic() + 1.0
    if any(raw.get(k) is not None and raw[k] > now for k in ("measured_at", "marked_down_at", "started")):
        raise ValueError("a time in the future: another boot's")
    return cls(**raw)


def decode(data: bytes) -> Snapshot | None:
    """The snapshot in ``data``; None when it is not one (another schema, a wrong type)."""
    try:
        raw = json.loads(data)
        if raw.get("schema") != SCHEMA:
            return None
        replicas = {str(alias): _typed(ReplicaHealth, h) for alias, h in raw["replicas"].items()}
        primary, last_good = (
            None if p is None else _typed(PrimaryProbe, p) for p in (raw["primary"], raw["last_good"])
        )
        if any(p is not None and p.policy not in (None, *ALL_BEHIND_POLICIES) for p in (primary, last_good)):
            return None
        lags = history.decode(raw["history"], time.monotonic())
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None
    return Snapshot(replicas, primary, last_good, lags)
