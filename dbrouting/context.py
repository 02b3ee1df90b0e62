"""Per-request and per-task routing state, in ``contextvars`` (sync and async alike).

- ``use_primary()`` forces reads to the primary for a block or a view (nestable).
- ``max_staleness(seconds)`` sets the staleness tolerance for a block or a view.
- ``routing_scope()`` starts fresh state: what the middleware does around each request, and
  what a task runner should do around each task. A write pins the rest of its scope's reads to
  the primary. Code outside any scope (a management command, a shell) has one scope per thread.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .exceptions import RoutingBlockError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class RoutingState:
    """Mutable on purpose: a write made in a sync_to_async thread must pin the request."""

    pinned: bool = False
    wrote: bool = False  # the scope asked for a write on the primary: capture a causal token
    token_lsn: int | None = None  # the causal token the request came with (its WAL position)
    reads: set[str] = field(default_factory=set)  # aliases chosen for reads, for the debug header


@dataclass(frozen=True, slots=True)
class Blocks:
    """What the routing blocks entered in this context ask (one variable: the router's common
    case, no block at all, is then one ``get()`` and an identity test against ``NO_BLOCKS``)."""

    forced: int = 0  # use_primary() depth
    staleness: float | None = None  # the innermost max_staleness()
    read_after: int | None = None  # the highest read_after_lsn()


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


# Migrations run (between pre_migrate and post_migrate): every read of the process goes to the
# primary, whose schema is the new one. Not a block: no context resets it but post_migrate.
migrating = False


def is_forced() -> bool:
    return migrating or blocks_var.get().forced > 0


def staleness_override() -> float | None:
    return blocks_var.get().staleness


def required_lsn() -> int | None:
    """The WAL position a replica must have replayed to serve reads here, if any."""
    state = state_var.get()
    token = state.token_lsn if state is not None else None
    after = blocks_var.get().read_after
    if after is None:
        return token
    return after if token is None else max(token, after)


def set_migrating(value: bool) -> None:
    global migrating
    migrating = value


class _RoutingBlock:
    """A context manager that is also a decorator of sync and async functions.

    One instance may be entered again while it is active (nested, or from several threads or
    tasks at once): what each entry must undo is kept in a per-context stack, not on the instance.
    """

    def _enter(self) -> Token[Any]:
        raise NotImplementedError

    def _reset(self, token: Token[Any]) -> None:
        raise NotImplementedError

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

    def _reset(self, token: Token[Any]) -> None:
        blocks_var.reset(token)


class max_staleness(_RoutingBlock):
    """Read from replicas at most ``seconds`` behind the primary in the block (or view).

    Tighter or looser than ``DBROUTING['MAX_STALENESS_SECONDS']``; the innermost block wins.
    A tolerance below the check interval cannot be told apart from the interval itself: for
    exact read-your-writes, use causal tokens.
    """

    def __init__(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            raise ValueError(f"max_staleness() needs a finite number of seconds >= 0, not {seconds!r}")
        if seconds < 0:
            raise ValueError(f"max_staleness() needs a finite number of seconds >= 0, not {seconds!r}")
        self.seconds = float(seconds)

    def _enter(self) -> Token[Any]:
        return _set_blocks(staleness=self.seconds)

    def _reset(self, token: Token[Any]) -> None:
        blocks_var.reset(token)


class routing_scope(_RoutingBlock):
    """Fresh routing state (not pinned, no causal token) for a request, a task, or a test."""

    def _enter(self) -> Token[Any]:
        return state_var.set(RoutingState())

    def _reset(self, token: Token[Any]) -> None:
        state_var.reset(token)


class read_after_lsn(_RoutingBlock):
    """Reads in the block go only to replicas that have replayed ``lsn`` (else the primary)."""

    def __init__(self, lsn: int | None) -> None:
        self.lsn = lsn

    def _enter(self) -> Token[Any]:
        current = blocks_var.get().read_after
        positions = [p for p in (current, self.lsn) if p is not None]
        return _set_blocks(read_after=max(positions) if positions else None)

    def _reset(self, token: Token[Any]) -> None:
        blocks_var.reset(token)
