"""Routing blocks as context managers and decorators: nesting, reuse, async, generators."""

from __future__ import annotations

import contextvars
import threading

import pytest
from asgiref.sync import async_to_sync, markcoroutinefunction

from dbrouting import max_staleness, routing_scope, use_primary, when_all_behind
from dbrouting.context import NO_BLOCKS, RoutingState, blocks_var, current_state, read_after_lsn
from dbrouting.exceptions import RoutingBlockError


def is_forced() -> bool:
    return blocks_var.get().forced > 0


def staleness_override() -> float | None:
    return blocks_var.get().staleness


def test_one_instance_reused_nested_restores_the_outer_value() -> None:
    loose = max_staleness(3600)
    with loose:
        with loose:
            assert staleness_override() == 3600
        assert staleness_override() == 3600
    assert staleness_override() is None
    primary = use_primary()
    with primary, primary:
        assert is_forced()
    assert not is_forced()


def test_one_instance_shared_by_threads_leaks_nothing() -> None:
    shared = use_primary()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                with shared:
                    barrier.wait(timeout=5) if _ == 0 else None
                    assert is_forced()
                assert not is_forced()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not is_forced()


def test_decorator__async_function_marked_as_coroutine_is_awaited_inside_the_block() -> None:
    class View:
        def __call__(self) -> object:
            async def run() -> bool:
                return is_forced()

            return run()

    view = View()
    markcoroutinefunction(view)  # what Django does for async class-based views' as_view()

    def handler() -> object:
        return view()

    markcoroutinefunction(handler)
    wrapped = use_primary()(handler)
    assert async_to_sync(wrapped)() is True
    assert not is_forced()


def test_decorator__plain_async_function() -> None:
    @max_staleness(7)
    async def view() -> float | None:
        return staleness_override()

    assert async_to_sync(view)() == 7
    assert staleness_override() is None


def test_decorator__refuses_generators() -> None:
    def gen() -> object:
        yield is_forced()

    async def agen() -> object:
        yield is_forced()

    with pytest.raises(TypeError, match=r"^use_primary\(\) cannot decorate a generator"):
        use_primary()(gen)
    with pytest.raises(TypeError, match=r"^max_staleness\(\) cannot decorate a generator"):
        max_staleness(1)(agen)


def test_nested_scope__hands_its_writes_on_to_the_enclosing_scope() -> None:
    from dbrouting import routing_scope
    from dbrouting.context import current_state

    with routing_scope():
        outer = current_state()
        with routing_scope():
            assert current_state() is not outer
            assert not current_state().pinned  # fresh inside
        assert not outer.wrote  # a scope that did not write hands nothing on
        with routing_scope():
            current_state().wrote = current_state().pinned = True
        assert outer.wrote
        assert outer.pinned


def test_read_after_lsn__the_highest_position_wins_and_none_asks_nothing() -> None:
    with read_after_lsn(5):
        assert blocks_var.get().read_after == 5
        with read_after_lsn(3):
            assert blocks_var.get().read_after == 5
        with read_after_lsn(None):
            assert blocks_var.get().read_after == 5
        with read_after_lsn(9):
            assert blocks_var.get().read_after == 9
        assert blocks_var.get().read_after == 5
    assert blocks_var.get() is NO_BLOCKS
    with read_after_lsn(None):
        assert blocks_var.get() is NO_BLOCKS


def test_when_all_behind__validates_nests_and_max_staleness_starts_without_it() -> None:
    for bad in ("stale", "", "PRIMARY", None):
        with pytest.raises(ValueError, match="when_all_behind"):
            when_all_behind(bad)  # type: ignore[arg-type]
    with when_all_behind("budget"):
        assert blocks_var.get().policy == "budget"
        with max_staleness(1):  # a helper's promise of freshness: the enclosing policy does not reach it
            assert (blocks_var.get().staleness, blocks_var.get().policy) == (1.0, None)
            with when_all_behind("least_lagged"):
                assert (blocks_var.get().staleness, blocks_var.get().policy) == (1.0, "least_lagged")
        assert (blocks_var.get().staleness, blocks_var.get().policy) == (None, "budget")
    assert blocks_var.get() is NO_BLOCKS


def test_nested_scope__hands_the_largest_staleness_served_on() -> None:
    with routing_scope():
        outer = current_state()
        with routing_scope():
            current_state().stale_seconds = 0.5  # the first, below a second
        assert outer.stale_seconds == 0.5
        with routing_scope():
            current_state().stale_seconds = 7.5
        assert outer.stale_seconds == 7.5
        with routing_scope():
            current_state().stale_seconds = 3.0
        assert outer.stale_seconds == 7.5
        with routing_scope():
            pass
        assert outer.stale_seconds == 7.5


def test_max_staleness__refuses_what_is_not_a_finite_number_of_seconds() -> None:
    for bad in (-1, -0.001, float("nan"), float("inf"), "5", None, True):
        with pytest.raises(ValueError, match="max_staleness"):
            max_staleness(bad)  # type: ignore[arg-type]
    for good in (0, 0.0, 2, 3600.5):
        assert max_staleness(good).seconds == float(good)


def test_tally__the_scopes_reads_with_its_replicas_counted_apart() -> None:
    state = RoutingState(reads={("replica1", "replica"): 2, ("default", "pinned"): 1}, replica="replica1",
                         replica_reads=3)  # fmt: skip
    assert state.tally() == {("replica1", "replica"): 5, ("default", "pinned"): 1}
    assert state.reads == {("replica1", "replica"): 2, ("default", "pinned"): 1}  # not changed by asking
    assert RoutingState(reads={}, replica="replica2", replica_reads=4).tally() == {("replica2", "replica"): 4}
    assert RoutingState(reads={}, replica="replica2").tally() == {}
    assert RoutingState(reads=None, replica=None, replica_reads=2).tally() == {}
    state.settle()
    assert (state.reads, state.replica_reads) == ({("replica1", "replica"): 5, ("default", "pinned"): 1}, 0)


def test_blocks__exited_out_of_order_is_an_error_that_says_so() -> None:
    outer, inner = use_primary(), max_staleness(1)
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(RoutingBlockError, match=r"^routing blocks must be exited in the reverse order of entry$"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)
    assert blocks_var.get() is NO_BLOCKS


def test_when_all_behind__names_the_policies_it_takes() -> None:
    with pytest.raises(ValueError, match=r"^when_all_behind\(\) takes one of primary, least_lagged, budget, not 'x'$"):
        when_all_behind("x")


def test_state__a_scope_counts_its_reads_a_thread_has_one_state_of_its_own() -> None:
    with routing_scope():
        scoped = current_state()
        assert scoped.reads == {}  # counted when the scope ends
        assert current_state() is scoped

    def outside() -> tuple[RoutingState, RoutingState]:
        return current_state(), current_state()

    first, again = contextvars.Context().run(outside)
    assert first is again
    assert first.reads is None  # a thread's own state never ends: its reads are counted at once
