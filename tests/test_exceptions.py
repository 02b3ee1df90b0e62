"""dbrouting's own errors: one base class, and each still the kind of error callers expect."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from dbrouting import max_staleness, read_after, use_primary
from dbrouting.causal import CausalToken
from dbrouting.exceptions import DbRoutingError, InvalidToken, ReplicaMarkedDown, RoutingBlockError


def test_invalid_token__is_ours_and_a_value_error() -> None:
    for garbage in ("", "nonsense", "0/1@99999999999999"):
        with pytest.raises(InvalidToken) as caught:
            CausalToken.decode(garbage)
        assert isinstance(caught.value, DbRoutingError)
        assert isinstance(caught.value, ValueError)
    with pytest.raises(InvalidToken):
        read_after("garbage")


def test_routing_blocks__exited_out_of_order_are_refused() -> None:
    outer, inner = use_primary(), max_staleness(3)
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(RoutingBlockError, match="reverse order"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)


def test_replica_marked_down__is_an_operational_error() -> None:
    assert issubclass(ReplicaMarkedDown, OperationalError)
    assert issubclass(ReplicaMarkedDown, DbRoutingError)
