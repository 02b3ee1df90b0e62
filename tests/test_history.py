"""The lag history (dbrouting.history): its steps, its bounds, its file form. A paused replica's
history on the real cluster: tests/test_charts.py, with the pictures drawn from it."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import pytest

from dbrouting import history, snapshots
from dbrouting.history import POINTS, Point

WINDOW = 600.0
STEP = WINDOW / POINTS


@dataclass(frozen=True)
class Health:
    lag_seconds: float | None
    measured_at: float | None


def rounds(*lags: float | None, start: float = 1000.0, every: float = 1.0, usable: bool = True) -> history.Lags:
    """One replica "r" probed once per ``every`` seconds, with these lags."""
    lags_so_far: history.Lags = {}
    for i, lag in enumerate(lags):
        at = start + i * every
        lags_so_far = history.record(lags_so_far, {"r": Health(lag, at)}, {"r"} if usable else set(), WINDOW, at)
    return lags_so_far


def test_record__probes_within_a_step_are_one_point_the_worst_of_them() -> None:
    [point] = rounds(0.5, 3.0, 1.0, every=STEP / 4)["r"]
    assert point == Point(1000.0, 3.0, True, False)


def test_record__a_step_later_a_new_point() -> None:
    points = rounds(0.5, 3.0, every=STEP)["r"]
    assert [(p.at, p.lag_seconds) for p in points] == [(1000.0, 0.5), (1000.0 + STEP, 3.0)]


def test_record__one_probe_down_or_not_usable_marks_its_whole_step() -> None:
    lags = rounds(0.5, every=1)
    lags = history.record(lags, {"r": Health(None, 1001.0)}, set(), WINDOW, 1001.0)  # down, not usable
    lags = history.record(lags, {"r": Health(0.2, 1002.0)}, {"r"}, WINDOW, 1002.0)
    assert lags["r"] == (Point(1000.0, 0.5, usable=False, down=True),)  # the worst lag measured kept


def test_record__a_step_with_no_measure_has_no_lag() -> None:
    assert rounds(None, None, usable=False)["r"] == (Point(1000.0, None, False, True),)


def test_record__a_mark_down_has_no_probe_time_and_counts_now() -> None:
    lags = history.record({}, {"r": Health(None, None)}, set(), WINDOW, 1234.5)
    assert lags["r"] == (Point(1234.5, None, False, True),)


def test_record__bounded_by_the_window_and_by_points_whatever_the_rounds() -> None:
    points = rounds(*[1.0] * 3000, every=0.5)["r"]  # 25 minutes of probes every half second
    assert len(points) <= POINTS
    newest = 1000.0 + 2999 * 0.5
    assert min(p.at for p in points) >= newest - WINDOW
    assert newest - STEP < max(p.at for p in points) <= newest  # the newest step: the newest probe's
    assert len(rounds(*[1.0] * 300, every=STEP)["r"]) == POINTS  # a step apart: the window's newest POINTS
    long_window = history.record({"r": points}, {"r": Health(1.0, newest + 1)}, {"r"}, 36_000.0, newest + 1)
    assert len(long_window["r"]) <= POINTS


def test_record__a_replica_no_longer_probed_is_dropped_and_a_window_of_0_keeps_nothing() -> None:
    lags = rounds(1.0)
    assert history.record(lags, {"s": Health(0.0, 1001.0)}, {"s"}, WINDOW, 1001.0).keys() == {"s"}
    assert history.record(lags, {"r": Health(0.0, 1001.0)}, {"r"}, 0.0, 1001.0) == {}


def test_codec__a_round_trip_gives_the_same_history_infinite_lag_included() -> None:
    lags = rounds(0.0, math.inf, None, 2.5, every=STEP, usable=False)
    text = json.dumps(history.encode(lags))
    assert history.decode(json.loads(text), now=2000.0) == lags


@pytest.mark.parametrize(
    "spoil",
    [
        [[1.0, 0.0, True]],  # a field missing
        [[True, 0.0, True, False]],  # a bool for a time
        [[1.0, "0", True, False]],  # a string for a lag
        [[1.0, 0.0, 1, False]],  # an int for a bool
        [[1.0, float("nan"), True, False]],
        [[float("inf"), 0.0, True, False]],
        [[3600.0, 0.0, True, False]],  # in the future: another boot's
        [[1.0, 0.0, True, False]] * (POINTS + 1),  # more than a history holds
        {"at": 1.0},
    ],
)
def test_codec__a_history_that_is_not_exactly_ours_is_refused(spoil: object) -> None:
    assert history.decode({"r": [[1.0, 0.0, True, False]]}, now=100.0) == {"r": (Point(1.0, 0.0, True, False),)}
    with pytest.raises(ValueError, match="history"):
        history.decode({"r": spoil}, now=100.0)
    with pytest.raises(ValueError, match="history"):
        history.decode([], now=100.0)


def test_snapshot_file__full_histories_keep_it_a_few_kilobytes() -> None:
    from dbrouting.assessment import ReplicaHealth, Snapshot

    aliases = [f"replica{i}" for i in range(1, 6)]
    now = time.monotonic()
    lags = {a: tuple(Point(now - WINDOW + i * STEP, 1234.567 + i, False, i % 2 == 0) for i in range(POINTS))
            for a in aliases}  # fmt: skip
    snapshot = Snapshot({a: ReplicaHealth(a) for a in aliases}, history=lags)
    data = snapshots.encode(snapshot)
    assert len(data) < 6_000 * len(aliases)
    decoded = snapshots.decode(data)
    assert decoded is not None
    assert decoded.history == lags
