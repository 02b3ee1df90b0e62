"""Pictures of the lag history (dbrouting.charts): the admin page's SVG chart and the terminal's
sparkline, their geometry; then a replica paused on the real cluster, seen growing in the
history, on the admin page and under ``replica_status --watch``."""

from __future__ import annotations

import contextlib
import io
import itertools
import re
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connections
from django.template.loader import render_to_string
from django.test import Client, override_settings
from pgcluster import Cluster

from dbrouting import charts
from dbrouting.charts import HIGH, LOW, lag_chart, sparkline, top_of, trend_lines
from dbrouting.history import POINTS, Point
from dbrouting.status import StatusReport

from .conftest import wait_for_replicas, wait_until
from .routing_helpers import pause_replay, resume_replay

TOLERANCE, WINDOW, GAP, NOW = 5.0, 600.0, 2.5, 10_000.0
STEP = WINDOW / POINTS


def ramp(*lags: float | None, usable: bool = True, every: float = STEP) -> list[Point]:
    """Points ``every`` seconds apart, the last one at NOW; None: down."""
    return [
        Point(NOW - (len(lags) - 1 - i) * every, lag, usable and lag is not None, lag is None)
        for i, lag in enumerate(lags)
    ]


def chart_of(points: list[Point], tolerance: float = TOLERANCE) -> charts.LagChart:
    return lag_chart("replica1", points, tolerance, WINDOW, GAP, NOW)


def coordinates(line: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in line.split())]


def test_top__a_round_number_over_the_peak_twice_the_tolerance_and_a_second() -> None:
    assert [top_of(0, 5), top_of(10, 5), top_of(12.3, 5), top_of(101, 1), top_of(0, 0), top_of(0.3, 0.2)] == [
        10, 10, 20, 200, 1, 1,
    ]  # fmt: skip


def test_chart__points_scale_to_the_plot_left_to_right_bottom_to_top() -> None:
    chart = chart_of(ramp(*[20.0 * i / POINTS for i in range(POINTS + 1)]))  # 0 s ten minutes ago, 20 s now
    assert chart.top == 20
    [line] = chart.lines
    points = coordinates(line)
    assert points[0] == (charts.LEFT, chart.bottom)
    assert points[POINTS // 2] == (charts.LEFT + charts.PLOT_WIDTH / 2, charts.TOP + charts.PLOT_HEIGHT / 2)
    assert points[-1] == (chart.right, chart.plot_top)
    assert chart.bands == ()
    assert chart.peak == 20.0


def test_chart__the_tolerance_line_at_its_height() -> None:
    chart = chart_of(ramp(20.0, 0.0))
    assert chart.tolerance_y == pytest.approx(charts.TOP + charts.PLOT_HEIGHT * (1 - 5 / 20))
    html = render_to_string("admin/dbrouting/_lag_charts.html", {"lag_charts": [chart]})
    y = f"{chart.tolerance_y:.1f}"
    assert f'<line class="tolerance" x1="{charts.LEFT}" y1="{y}" x2="{chart.right}" y2="{y}"' in html
    assert "tolerance 5 s" in html


def test_chart__lag_past_the_top_unbounded_included_is_drawn_at_the_top() -> None:
    chart = chart_of(ramp(1.0, float("inf")))
    assert chart.top == 10  # the infinite lag does not set the scale
    assert coordinates(chart.lines[0])[-1][1] == chart.plot_top


def test_chart__down_and_not_usable_stretches_are_bands_and_break_the_line() -> None:
    points = ramp(0.0, 0.0, None, None, 7.0, 8.0, 0.0)
    points[4:6] = [Point(p.at, p.lag_seconds, False, False) for p in points[4:6]]  # lagging past the tolerance
    chart = chart_of(points)
    assert [(b.down, b.seconds) for b in chart.bands] == [(True, 2 * STEP), (False, 2 * STEP)]
    down, lagging = chart.bands
    assert down.x == pytest.approx(coordinates(chart.lines[0])[-1][0] + charts.PLOT_WIDTH * STEP / WINDOW, abs=0.05)
    assert lagging.x == pytest.approx(coordinates(chart.lines[1])[0][0], abs=0.05)
    assert len(chart.lines) == 2  # no line across the outage
    assert "down 10 s, lagging or rejoining 10 s" in chart.summary


def test_chart__a_silence_longer_than_a_step_and_the_stall_limit_breaks_the_line() -> None:
    points = ramp(1.0, 1.0, 1.0) + ramp(2.0, 2.0)
    points[:3] = [Point(p.at - 60, p.lag_seconds, True, False) for p in points[:3]]  # a minute before the rest
    chart = chart_of(points)
    assert [len(coordinates(line)) for line in chart.lines] == [3, 2]


def test_chart__a_lone_point_is_a_stroke_to_its_steps_end() -> None:
    [line] = chart_of([Point(NOW - 60, 3.0, True, False)]).lines  # no probe since: a stopped prober
    (x1, y1), (x2, y2) = coordinates(line)
    scale = charts.PLOT_WIDTH / WINDOW
    assert (x1, x2, y1) == pytest.approx((chart_of([]).right - 60 * scale, x1 + (STEP + GAP) * scale, y2), abs=0.05)


def test_chart__older_points_than_the_window_are_left_out() -> None:
    chart = chart_of([Point(NOW - WINDOW - 1, 50.0, False, False), *ramp(1.0, 1.0)])
    assert chart.peak == 1.0
    assert chart.bands == ()


def test_render__no_data_yet_is_said_not_drawn() -> None:
    chart = chart_of([])
    assert chart.newest is None
    assert chart.summary == "no data yet"
    html = render_to_string("admin/dbrouting/_lag_charts.html", {"lag_charts": [chart]})
    assert "No data yet" in html
    assert "<svg" not in html
    assert render_to_string("admin/dbrouting/_lag_charts.html", {"lag_charts": []}).strip() == ""


def test_render__an_accessible_svg_with_no_script_and_nothing_to_fetch() -> None:
    chart = lag_chart("<b>r</b>", ramp(0.0, None, 2.0), TOLERANCE, WINDOW, GAP, NOW)
    html = render_to_string("admin/dbrouting/_lag_charts.html", {"lag_charts": [chart]})
    assert 'role="img" aria-labelledby="lag-title-1 lag-desc-1"' in html
    assert '<title id="lag-title-1">&lt;b&gt;r&lt;/b&gt;: lag over the last 10 min</title>' in html
    assert f'<desc id="lag-desc-1">{chart.summary}</desc>' in html
    assert "<b>r</b>" not in html
    assert "<script" not in html
    assert re.findall(r"(?:href|src)=|url\(", html) == []
    assert [label for _, label in chart.x_labels] == ["-10 min", "-5 min", "now"]
    assert ">10 s</text>" in html  # the top's label
    assert '<rect class="down"' in html


def test_sparkline__lags_in_levels_the_tolerance_between_low_and_high_down_and_no_data() -> None:
    lags = [0.0, 1.0, 2.5, 4.0, 5.0, 5.1, 10.0, 20.0, None, 0.0]
    points = [Point(at, lag, True, lag is None) for at, lag in zip(range(int(NOW) - 10, int(NOW)), lags, strict=True)]
    chart = lag_chart("r", points, TOLERANCE, 20.0, GAP, NOW)  # 20 s in 20 columns: a point a column
    assert chart.top == 20
    line = sparkline(chart, 20, NOW)
    assert line == "·" * 10 + f"▁▁▃▄▄▅▆█{charts.DOWN}▁"
    assert set(line[10:15]) <= set(LOW)  # within the tolerance
    assert set(line[15:18]) <= set(HIGH)  # past it


def test_trend_lines__a_legend_then_a_line_per_replica_in_replicas_order() -> None:
    report = StatusReport("now", TOLERANCE, history={"replica2": tuple(ramp(1.0, 50.0))})
    legend, first, second = trend_lines(report, columns=30, now=NOW)
    assert legend.startswith("lag over the last 10 min: ▁▂▃▄ within the tolerance (5 s), ▅▆▇█ past it")
    assert first == "  replica1  " + "·" * 30 + "  now -, peak 0.00 s"
    assert second.startswith("  replica2  " + "·" * 29)
    assert second.endswith("█  now 50.00 s, peak 50.00 s")
    assert trend_lines(StatusReport("now", None)) == []  # a broken configuration: said elsewhere
    with override_settings(DBROUTING={"LAG_HISTORY_SECONDS": 0}):
        assert trend_lines(report) == []
        assert charts.lag_charts(report) == []


@pytest.mark.usefixtures("live_db")
def test_watch__stops_after_count_reports_and_cleanly_when_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CommandError, match="--count needs --watch"):
        call_command("replica_status", "--count", "2")
    from dbrouting.management.commands import replica_status

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(replica_status, "time", SimpleNamespace(sleep=interrupted))  # (the command's alone)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.suppress(SystemExit):  # (whatever the cluster's state: the exit code is measure's)
        call_command("replica_status", "--watch", "5", stdout=out, stderr=err)
    assert out.getvalue().count("checked at") == 1
    assert "Traceback" not in err.getvalue()
    monkeypatch.undo()
    assert watched(count=2).count("checked at") == 2


# -- on the real cluster ------------------------------------------------------------------


def lag_history(alias: str) -> tuple[Point, ...]:
    from dbrouting.health import cache

    return tuple(cache.snapshot().history.get(alias, ()))


def growing(points: tuple[Point, ...], past: float, steps: int = 4) -> bool:
    """The newest ``steps`` points measured and not usable, each more behind than the one before,
    the last past ``past`` seconds."""
    newest = points[-steps:]
    lags = [p.lag_seconds for p in newest if p.lag_seconds is not None and not p.usable]
    return len(lags) == steps and all(a < b for a, b in itertools.pairwise(lags)) and lags[-1] > past


def watched(count: int = 1) -> str:
    out = io.StringIO()
    with contextlib.suppress(SystemExit):
        call_command("replica_status", "--watch", "0.01", "--count", str(count), stdout=out, stderr=io.StringIO())
    return out.getvalue()


def figure(html: str, alias: str) -> str:
    """The chart's figure of ``alias`` in the admin page."""
    [found] = re.findall(rf"<figure[^>]*>\s*<figcaption><strong>{alias}</strong>.*?</figure>", html, re.DOTALL)
    return str(found)


PAUSED = {"CHECK_INTERVAL_SECONDS": 0.2, "MAX_STALENESS_SECONDS": 1.0, "LAG_HISTORY_SECONDS": 30}


@pytest.mark.usefixtures("live_db")
@override_settings(DBROUTING=PAUSED)
def test_paused_replica__history_admin_chart_and_watch_show_its_lag_growing_then_back(
    replay_control: Cluster,
) -> None:
    User.objects.db_manager("default").create_superuser("staff", "s@example.com", "pw-for-tests-only")
    wait_for_replicas()
    staff = Client()
    assert staff.login(username="staff", password="pw-for-tests-only")
    wait_for_replicas()  # the session row, which the next request reads
    wait_until(lambda: lag_history("replica1") and lag_history("replica1")[-1].usable, what="replica1 usable")
    pause_replay(replay_control, "replica1")
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE charts_wal AS SELECT 1 AS v")  # WAL the paused replica lacks
    wait_until(lambda: growing(lag_history("replica1"), past=2.0), timeout=30, what="replica1's lag growing")
    assert all(p.usable for p in lag_history("replica2")[-4:])  # the other one as it was

    page = staff.get("/admin/dbrouting/replicastatus/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<h2 id="lag-history">Lag over the last 30 s</h2>' in html
    assert '<rect class="lagging"' in figure(html, "replica1")
    assert 'class="tolerance"' in figure(html, "replica2")
    newest = {line.split()[0]: line.split()[1][-1] for line in watched().splitlines() if line.startswith("  replica")}
    assert newest["replica1"] in HIGH
    assert newest["replica2"] in LOW

    resume_replay(replay_control, "replica1")
    wait_until(lambda: (p := lag_history("replica1")[-1]).usable and p.lag_seconds == 0.0,
               timeout=30, what="replica1 caught up in the history")  # fmt: skip
    assert any(not p.usable for p in lag_history("replica1"))  # the pause stays in the history a while
