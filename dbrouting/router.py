"""``DATABASE_ROUTERS = ["dbrouting.router.PrimaryReplicaRouter"]``, and THE read decision.

:func:`decide` answers every read, for the router and for the replica engine's fallback alike:
an alias and the reason for it. No I/O: the routing state and blocks (``context``) and the
health cache's snapshot, all in memory. The reason is counted (``dbrouting_reads_total``), shown
in the ``X-DB-Route`` header when enabled, and logged at DEBUG level unless it is the common case.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any

from django.db import connections

from .assessment import ReplicaHealth
from .conf import Config, get_config
from .context import Blocks, RoutingState, blocks_var, current_state, state_var
from .health import cache
from .lsn import has_replayed
from .metrics import count_reads

logger = logging.getLogger("dbrouting")

# Why a read went where it went (the "reason" label of dbrouting_reads_total, X-DB-Route).
REPLICA, INSTANCE, FORCED, ATOMIC, PINNED, UNSAFE, CAUSAL, MONOTONIC, NO_USABLE, NO_REPLICAS, STALE, BUDGET = (
    "replica", "instance", "forced", "atomic", "pinned", "unsafe_method", "causal", "monotonic",
    "no_usable_replica", "no_replicas", "stale", "budget",
)  # fmt: skip

_thread = threading.local()
# Bound once: CPython 3.11 compiles a method call on an imported name as an attribute load and a
# call (no LOAD_METHOD), a bound-method object per read.
_monotonic, _get_state, _get_blocks = time.monotonic, state_var.get, blocks_var.get


def decide(*model: Any, exclude: Collection[str] = (), **hints: Any) -> str | None:
    """The alias for a read in the current context, with Django's ``hints`` (the model, passed by
    Django, does not matter: every node holds every table); ``exclude`` names replicas that just
    failed this read. The reason is counted in the routing state's reads (``tally()``, for the
    header and the metric) and logged at DEBUG level unless it is the common case. The
    primary's reasons come first, in order."""
    config = get_config()
    state = _get_state() or current_state()
    blocks = _get_blocks()
    # Django keeps one connection wrapper per thread and alias for the thread's life, so the one
    # found once in a thread is asked again: asgiref's Local lookup costs more than the decision.
    wrapper = getattr(_thread, "primary", None)
    if wrapper is None or wrapper.alias != config.primary:
        wrapper = _thread.primary = connections[config.primary]
    alias = config.primary
    instance_db = None
    if hints:  # (the common read has none: it pays nothing here)
        instance_db = _instance_db(hints)
        if instance_db is not None and instance_db != alias and instance_db not in config.replicas:
            return None  # an object of another database: other routers' (or Django's) to route
    if not config.replicas:
        reason = NO_REPLICAS
    elif hints and instance_db == alias:
        reason = INSTANCE  # Django's convention: an object's related reads follow it
    elif blocks.forced:
        reason = FORCED
    elif wrapper.in_atomic_block and not _request_transaction(state, wrapper.atomic_blocks):
        reason = ATOMIC
    elif state.pinned:
        reason = PINNED
    elif state.primary_reads:
        reason = UNSAFE
    else:
        snapshot = cache.latest  # _replica() restarts a stopped prober
        # The snapshot's own record of its usable replicas under the default tolerance, read in
        # place (a call would cost a tenth of the decision); worked out anew when it no longer holds.
        worked_for, until, usable = snapshot.default_usable
        if worked_for is not config or blocks.staleness is not None or _monotonic() > until:
            usable = snapshot.usable(config, blocks.staleness)
        replica = state.replica
        if replica is not None and replica in usable and not (hints or exclude or state.token_lsn or blocks.read_after):
            if state.reads is None:
                count_reads({(replica, REPLICA): 1})
            else:
                state.replica_reads += 1
            return replica  # the common case: the scope's replica, still usable
        alias, reason = _replica(config, state, blocks, instance_db, exclude, usable)
    if state.reads is None:
        count_reads({(alias, reason): 1})
    else:
        key = alias, reason
        state.reads[key] = state.reads.get(key, 0) + 1
    if reason is not REPLICA:
        logger.debug("read on %s (%s)", alias, reason)
    return alias


class PrimaryReplicaRouter:
    """Writes and migrations on the primary; reads on a usable replica, else the primary."""

    # THE decision itself, called by Django as db_for_read(model, **hints): no frame in between.
    db_for_read = staticmethod(decide)

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        # No pin here: Django asks before statements that do not write (a ForeignKey assignment,
        # get_or_create() that finds its row); writes.detect_writes pins on the statement itself.
        return get_config().primary

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        config = get_config()
        ours = {config.primary, *config.replicas}
        # Same data on every node: objects read anywhere may be related.
        if obj1._state.db in ours and obj2._state.db in ours:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        if db in get_config().replicas:
            return False  # replicas get their schema by replication
        return None


def _replica(
    config: Config,
    state: RoutingState,
    blocks: Blocks,
    instance_db: str | None,
    exclude: Collection[str],
    usable: Mapping[str, ReplicaHealth],
) -> tuple[str, str]:
    """Among the ``usable`` replicas: the instance's or the scope's if it has replayed what the
    scope needs (its causal token); else one that has, and has replayed what the scope already
    saw (monotonic reads), picked by the strategy; else the primary."""
    cache.snapshot()  # (re)starts the prober if it is not running: its last snapshot ages out
    if state.budgeted:  # the scope began on the primary's budget: it stays there (monotonic reads)
        _budget.take(config.primary_read_budget, debt=True)
        return config.primary, BUDGET
    need = state.token_lsn
    if blocks.read_after is not None:
        need = blocks.read_after if need is None else max(need, blocks.read_after)
    for preferred in (instance_db, state.replica):
        health = usable.get(preferred) if preferred is not None and preferred not in exclude else None
        if health is not None and has_replayed(health.replay_lsn, need):
            return health.alias, REPLICA
    fit = [h for alias, h in usable.items() if alias not in exclude and has_replayed(h.replay_lsn, need)]
    # What the scope may have read: its replica's last known position (it served the scope up to
    # its last probe, within one check interval), and that of an object's own replica.
    known = cache.latest.replicas
    seen = [state.seen_lsn, *(h.replay_lsn for a in (state.replica, instance_db) if (h := known.get(a or "")))]
    floor = max((p for p in seen if p is not None), default=None)
    candidates = [h for h in fit if has_replayed(h.replay_lsn, floor)]
    if not candidates and not fit and need is None:  # every replica behind: the policy in force
        degraded = _all_behind(config, state, blocks, exclude, floor)
        if degraded is not None:
            return degraded
    if not candidates:
        return config.primary, MONOTONIC if fit else CAUSAL if usable and need is not None else NO_USABLE
    alias: str = config.strategy.pick(candidates)
    state.settle()
    state.replica = alias
    positions = [p for p in (floor, usable[alias].replay_lsn) if p is not None]
    state.seen_lsn = max(positions, default=None)
    return alias, REPLICA


def _all_behind(
    config: Config, state: RoutingState, blocks: Blocks, exclude: Collection[str], floor: int | None
) -> tuple[str, str] | None:
    """While no replica is within the tolerance and the primary answers, under "least_lagged" or
    "budget": the primary on its budget, or a replica up and streaming within
    ``MAX_STALENESS_HARD_SECONDS`` that has replayed what the scope saw: the scope's own if still
    there, else one of the least lagged (the strategy picks among those within the tolerance of
    the freshest). None: the primary, and always for a scope that already read the primary (it
    would go back in time)."""
    snapshot = cache.latest
    operator = snapshot.override()
    policy = (
        "primary" if operator == "primary"  # an operator's "stop serving stale reads" beats the code
        else blocks.policy or ("primary" if blocks.staleness is not None else operator or config.all_behind_policy)
    )  # fmt: skip
    scoped = state.reads is not None  # (a routing scope's, not a thread's own state)
    read_primary = scoped and (state.wrote or any(alias == config.primary for alias, _ in state.reads or ()))
    if policy == "primary" or not snapshot.primary_up or read_primary:
        return None
    now = _monotonic()
    behind = [
        h for alias in config.replicas
        if alias not in exclude and (h := snapshot.replicas.get(alias)) is not None
        and h.within_ceiling(config, now) and has_replayed(h.replay_lsn, floor)
    ]  # fmt: skip
    if not behind:
        return None
    health = next((h for h in behind if h.alias == state.replica), None)
    if health is None and policy == "budget" and scoped and _budget.take(config.primary_read_budget):
        state.budgeted = True
        return config.primary, BUDGET
    if health is None:  # the least lagged, and those about as fresh (within the tolerance): load spreads
        freshest = min(h.staleness(now) for h in behind)
        tolerance = config.max_staleness_seconds if blocks.staleness is None else blocks.staleness
        alias = config.strategy.pick([h for h in behind if h.staleness(now) - freshest <= tolerance])
        health = snapshot.replicas[alias]
    if health.alias != state.replica:
        state.settle()
        state.replica = health.alias
    state.seen_lsn = max((p for p in (floor, health.replay_lsn) if p is not None), default=None)
    state.stale_seconds = max(state.stale_seconds or 0.0, health.staleness(now))
    return health.alias, STALE


class _Budget:
    """The primary's read budget while every replica is behind: a token bucket per process,
    ``rate`` reads a second, a second's worth at most in hand. A scope that began on it stays on
    the primary (``debt``): the bucket then goes below zero (a second's worth at most), and new
    scopes wait until it refills."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens, self._at = math.inf, _monotonic()  # full at first

    def take(self, rate: float, debt: bool = False) -> bool:
        with self._lock:
            now = _monotonic()
            most = max(rate, 1.0)
            self._tokens, self._at = min(most, self._tokens + (now - self._at) * rate), now
            if (self._tokens < 1.0 or rate <= 0) and not debt:
                return False
            self._tokens = max(-most, self._tokens - 1.0)
            return True


_budget = _Budget()


def _request_transaction(state: RoutingState, blocks: list[Any]) -> bool:
    """The primary's innermost atomic block is the one ATOMIC_REQUESTS opened around the view,
    and the request has not written: its reads may go to a replica."""
    if state.wrote or not state.request_atomic_depth or len(blocks) != state.request_atomic_depth:
        return False
    if state.request_atomic_block is None:
        state.request_atomic_block = blocks[-1]  # the first seen at that depth: the view's own
    return blocks[-1] is state.request_atomic_block


def _instance_db(hints: Mapping[str, Any]) -> str | None:
    instance = hints.get("instance")
    return getattr(getattr(instance, "_state", None), "db", None)
