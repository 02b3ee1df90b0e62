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
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class RoutingState:
    """Mutable on purpose: a write made in a sync_to_async thread must pin the request."""

    pinned: bool = False
    wrote: bool = False  # the scope asked for a write on the primary: capture a causal token
    token_lsn: int | None = None  # the causal token the request came with (its WAL position)
    reads: set[str] = field(default_factory=set)  # aliases chosen for reads, for the debug header


_state: ContextVar[RoutingState | None] = ContextVar("dbrouting_state", default=None)
_forced: ContextVar[int] = ContextVar("dbrouting_forced", default=0)
_staleness: ContextVar[float | None] = ContextVar("dbrouting_staleness", default=None)
_migrating: ContextVar[bool] = ContextVar("dbrouting_migrating", default=False)
_read_after: ContextVar[int | None] = ContextVar("dbrouting_read_after", default=None)


def current_state() -> RoutingState:
    state = _state.get()
    if state is None:
        state = RoutingState()
        _state.set(state)
    return state


def is_forced() -> bool:
    return _forced.get() > 0 or _migrating.get()


def staleness_override() -> float | None:
    return _staleness.get()


def required_lsn() -> int | None:
    """The WAL position a replica must have replayed to serve reads here, if any."""
    state = _state.get()
    positions = [p for p in (state.token_lsn if state else None, _read_after.get()) if p is not None]
    return max(positions) if positions else None


def set_migrating(value: bool) -> None:
    _migrating.set(value)


class _RoutingBlock:
    """A context manager that is also a decorator of sync and async functions.

    Each use works on a fresh copy, so one decorated view can run in many threads at once.
    """

    def _copy(self) -> _RoutingBlock:
        raise NotImplementedError

    def __enter__(self) -> None:
        raise NotImplementedError

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        raise NotImplementedError

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                with self._copy():
                    return await func(*args, **kwargs)

            return async_inner  # type: ignore[return-value]

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with self._copy():
                return func(*args, **kwargs)

        return inner  # type: ignore[return-value]


class use_primary(_RoutingBlock):
    """Send every read in the block (or view) to the primary. Nestable."""

    def __init__(self) -> None:
        self._token: Token[int] | None = None

    def _copy(self) -> use_primary:
        return use_primary()

    def __enter__(self) -> None:
        self._token = _forced.set(_forced.get() + 1)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _forced.reset(self._token)
            self._token = None


class max_staleness(_RoutingBlock):
    """Read from replicas at most ``seconds`` behind the primary in the block (or view).

    Tighter or looser than ``DBROUTING['MAX_STALENESS_SECONDS']``; the innermost block wins.
    """

    def __init__(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
            raise ValueError(f"max_staleness() needs a number of seconds >= 0, not {seconds!r}")
        self.seconds = float(seconds)
        self._token: Token[float | None] | None = None

    def _copy(self) -> max_staleness:
        return max_staleness(self.seconds)

    def __enter__(self) -> None:
        self._token = _staleness.set(self.seconds)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _staleness.reset(self._token)
            self._token = None


class routing_scope(_RoutingBlock):
    """Fresh routing state (not pinned) for a request, a task, or a test."""

    def __init__(self) -> None:
        self._token: Token[RoutingState | None] | None = None

    def _copy(self) -> routing_scope:
        return routing_scope()

    def __enter__(self) -> None:
        self._token = _state.set(RoutingState())

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _state.reset(self._token)
            self._token = None


class read_after_lsn(_RoutingBlock):
    """Reads in the block go only to replicas that have replayed ``lsn`` (else the primary)."""

    def __init__(self, lsn: int | None) -> None:
        self.lsn = lsn
        self._token: Token[int | None] | None = None

    def _copy(self) -> read_after_lsn:
        return read_after_lsn(self.lsn)

    def __enter__(self) -> None:
        current = _read_after.get()
        lsn = self.lsn if current is None or self.lsn is None else max(current, self.lsn)
        self._token = _read_after.set(lsn if lsn is not None else current)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _read_after.reset(self._token)
            self._token = None
