"""Per-request and per-task routing state, in ``contextvars`` (sync and async alike).

- ``use_primary()`` forces reads to the primary for a block or a view (nestable).
- ``max_staleness(seconds)`` sets the staleness tolerance for a block or a view.
- ``routing_scope()`` starts fresh state: what the middleware does around each request, and
  what a task runner should do around each task. A scope reads from one replica (monotonic
  reads), and a write pins the rest of its reads to the primary. Code outside any scope (a
  shell, a thread of your own) has one scope per thread; each management command one of its own.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .conf import ALL_BEHIND_POLICIES
from .exceptions import RoutingBlockError
from .metrics import count_reads

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class RoutingState:
    """Mutable on purpose: a write made in a sync_to_async thread must pin the request."""

    pinned: bool = False
    wrote: bool = False  # the scope asked for a write on the primary: capture a causal token
    primary_reads: bool = False  # serving an unsafe method (PRIMARY_READ_METHODS): read the primary
    # ATOMIC_REQUESTS: the depth its atomic block takes on the primary (0: none), and that block
    # once seen (a later block at the same depth, after the view, is another one).
    request_atomic_depth: int = 0
    request_atomic_block: object = None
    token_lsn: int | None = None  # the causal token the request came with (its WAL position)
    renew_token: bool = False  # a pinning token was replaced by a real position: send it back
    write_lsn: int | None = None  # WAL position read right after the scope's last committed write
    replica: str | None = None  # the scope's replica, once chosen: later reads stay on it
    seen_lsn: int | None = None  # replay position of the scope's replica when chosen (monotonic reads)
    # While every replica is behind (ALL_BEHIND_POLICY): the scope reads the primary on its
    # budget (and stays there), or the largest staleness a replica served it (X-DB-Stale).
    budgeted: bool = False
    stale_seconds: float | None = None
    # Reads by (alias, reason), counted into dbrouting_reads_total when a routing_scope() ends;
    # None outside any scope (a thread's own state, which never ends): counted at once. Reads of
    # the common case (the scope's replica) are an int of their own until the replica changes.
    reads: dict[tuple[str, str], int] | None = None
    replica_reads: int = 0

    def tally(self) -> dict[tuple[str, str], int]:
        """The scope's reads so far, by (alias, reason)."""
        reads = dict(self.reads or {})
        if self.replica_reads and self.replica is not None:
            key = (self.replica, "replica")
            reads[key] = reads.get(key, 0) + self.replica_reads
        return reads

    def settle(self) -> None:
        """Before the scope's replica changes: its common-case reads join the others."""
        if self.reads is not None:
            self.reads = self.tally()
            self.replica_reads = 0


@dataclass(frozen=True, slots=True)
class Blocks:
    """What the routing blocks entered in this context ask (one variable: the router's common
    case, no block at all, is then one ``get()`` and an identity test against ``NO_BLOCKS``)."""

    forced: int = 0  # use_primary() depth
    staleness: float | None = None  # the innermost max_staleness()
    read_after: int | None = None  # the highest read_after_lsn()
    policy: str | None = None  # the innermost when_all_behind()


NO_BLOCKS = Blocks()

state_var: ContextVar[RoutingState | None] = ContextVar("dbrouting_state", default=None)
blocks_var: ContextVar[Blocks] = ContextVar("dbrouting_blocks", default=NO_BLOCKS)


def _set_blocks(**changes: Any) -> Token[Blocks]:
    blocks = replace(blocks_var.get(), **changes)
    return blocks_var.set(NO_BLOCKS if blocks == NO_BLOCKS else blocks)


def current_state() -> RoutingState:
    state = state_var.get()
    if state is None:
        state = RoutingState()
        state_var.set(state)
    return state


class _RoutingBlock:
    """A context manager that is also a decorator of sync and async functions.

    One instance may be entered again while it is active (nested, or from several threads or
    tasks at once): what each entry must undo is kept in a per-context stack, not on the instance.
    """

    def _enter(self) -> Token[Any]:
        raise NotImplementedError

    def _reset(self, token: Token[Any]) -> None:
        blocks_var.reset(token)

    def __enter__(self) -> None:
        token = self._enter()
        _undo.set((*_undo.get(), (self, token)))

    def __exit__(self, *exc_info: object) -> None:
        stack = _undo.get()
        block, token = stack[-1]
        if block is not self:
            raise RoutingBlockError("routing blocks must be exited in the reverse order of entry")
        _undo.set(stack[:-1])
        self._reset(token)

    def __call__(self, func: F) -> F:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"{type(self).__name__}() cannot decorate a generator: the block would end at its first yield"
            )
        # asgiref's test also knows functions marked as coroutines (async class-based views).
        if iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return markcoroutinefunction(async_inner)  # type: ignore[return-value]

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return inner  # type: ignore[return-value]


_undo: ContextVar[tuple[tuple[_RoutingBlock, Token[Any]], ...]] = ContextVar("dbrouting_undo", default=())


class use_primary(_RoutingBlock):
    """Send every read in the block (or view) to the primary. Nestable."""

    def _enter(self) -> Token[Any]:
        return _set_blocks(forced=blocks_var.get().forced + 1)


class max_staleness(_RoutingBlock):
    """Read from replicas at most ``seconds`` behind the primary in the block (or view).

    Tighter or looser than ``DBROUTING['MAX_STALENESS_SECONDS']``; the innermost block wins.
    A tolerance below the check interval cannot be told apart from the interval itself: for
    exact read-your-writes, use causal tokens.
    """

    def __init__(self, seconds: float) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise ValueError(f"max_staleness() needs a finite number of seconds >= 0, not {seconds!r}")
        self.seconds = float(seconds)

    def _enter(self) -> Token[Any]:
        # A promise of freshness: its reads degrade only under a when_all_behind() entered within it.
        return _set_blocks(staleness=self.seconds, policy=None)


class when_all_behind(_RoutingBlock):
    """What reads in the block (or view) do when no replica is within their tolerance:
    ``"primary"``, ``"least_lagged"`` or ``"budget"`` (``DBROUTING['ALL_BEHIND_POLICY']``). It
    beats the site's setting and an operator's override (but an operator's "primary"); the
    innermost block wins. Inside a ``max_staleness()`` block, reads degrade only under a
    ``when_all_behind()`` entered within it."""

    def __init__(self, policy: str) -> None:
        if policy not in ALL_BEHIND_POLICIES:
            raise ValueError(f"when_all_behind() takes one of {', '.join(ALL_BEHIND_POLICIES)}, not {policy!r}")
        self.policy = policy

    def _enter(self) -> Token[Any]:
        return _set_blocks(policy=self.policy)


class routing_scope(_RoutingBlock):
    """Fresh routing state (not pinned, no causal token, no replica yet) for a request, a task,
    or a test. A scope nested in another (a task run eagerly in a request, ``call_command()``)
    hands its writes on when it ends: the enclosing scope then reads its own writes too."""

    def _enter(self) -> Token[Any]:
        return state_var.set(RoutingState(reads={}))

    def _reset(self, token: Token[Any]) -> None:
        state = state_var.get()
        state_var.reset(token)
        if state is None:
            return
        count_reads(state.tally())
        outer = state_var.get()
        if outer is not None and state.wrote:
            outer.wrote, outer.pinned = True, outer.pinned or state.pinned
        if outer is not None and state.stale_seconds is not None:  # X-DB-Stale of the enclosing request
            outer.stale_seconds = max(outer.stale_seconds or 0.0, state.stale_seconds)


class read_after_lsn(_RoutingBlock):
    """Reads in the block go only to replicas that have replayed ``lsn`` (else the primary)."""

    def __init__(self, lsn: int | None) -> None:
        self.lsn = lsn

    def _enter(self) -> Token[Any]:
        current = blocks_var.get().read_after
        positions = [p for p in (current, self.lsn) if p is not None]
        return _set_blocks(read_after=max(positions) if positions else None)
