"""Pictures of each replica's recent lag (``dbrouting.history``): the admin page's SVG chart (its
geometry here, its markup in ``admin/dbrouting/_lag_charts.html``) and ``replica_status --watch``'s
sparkline. Both draw the history of the report they come with, against ``MAX_STALENESS_SECONDS``."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .conf import Config, get_config
from .history import POINTS, Point
from .status import StatusReport

WIDTH, HEIGHT = 600, 140  # the SVG's viewBox
LEFT, RIGHT, TOP, BOTTOM = 44, 84, 10, 22  # margins: the lag's labels left, the tolerance's right, time's below
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
LOW, HIGH = "▁▂▃▄", "▅▆▇█"  # the sparkline: within the tolerance, past it
DOWN, NO_DATA = "\N{MULTIPLICATION SIGN}", "\N{MIDDLE DOT}"


def top_of(peak: float, tolerance: float) -> float:
    """The lag at the top of a picture: 1, 2 or 5 times a power of ten, at least the peak, twice the
    tolerance and a second (the tolerance line never at the very top)."""
    value = max(peak, 2 * tolerance, 1.0)
    power = 10 ** math.floor(math.log10(value))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= value - 1e-9))


def _span(seconds: float, window: float) -> str:
    """``seconds`` in minutes when the ``window`` is two minutes or more, else in seconds."""
    return f"{seconds / 60:g} min" if window >= 120 else f"{seconds:g} s"


def _ago(seconds: float, window: float) -> str:
    return "now" if seconds == 0 else f"-{_span(seconds, window)}"


@dataclass(frozen=True)
class Band:
    """A stretch when the replica served no reads: ``down`` (not a standby answering) or lagging."""

    x: float
    width: float
    down: bool
    seconds: float


@dataclass(frozen=True)
class LagChart:
    alias: str
    window: float  # seconds drawn, up to now
    tolerance: float
    top: float  # the lag at the plot's top edge
    lines: tuple[str, ...]  # SVG polyline points, one per unbroken stretch of measurements
    bands: tuple[Band, ...]
    newest: Point | None
    peak: float  # the most lag measured (finite)
    steps: tuple[tuple[Point, float], ...] = ()  # the points drawn, each with when its step ends

    # Its layout, for the template (class attributes: not fields).
    width, height, left, right = WIDTH, HEIGHT, LEFT, WIDTH - RIGHT
    plot_top, plot_height, bottom = TOP, PLOT_HEIGHT, TOP + PLOT_HEIGHT

    @property
    def span(self) -> str:
        return _span(self.window, self.window)

    @property
    def tolerance_y(self) -> float:
        return _y(self.tolerance, self.top)

    @property
    def x_labels(self) -> list[tuple[float, str]]:
        return [(LEFT + PLOT_WIDTH * (1 - f), _ago(self.window * f, self.window)) for f in (1.0, 0.5, 0.0)]

    @property
    def summary(self) -> str:
        """The picture in words (its ``<desc>``, for screen readers)."""
        if self.newest is None:
            return "no data yet"
        lag = self.newest.lag_seconds
        now = "not measured" if lag is None else f"{lag:.2f} s"
        down = sum(b.seconds for b in self.bands if b.down)
        out = sum(b.seconds for b in self.bands if not b.down)
        return (f"now {now}, {'usable' if self.newest.usable else 'not usable'}; peak {self.peak:.2f} s; "
                f"tolerance {self.tolerance:g} s; down {down:.0f} s, lagging or rejoining {out:.0f} s")  # fmt: skip


def _y(lag: float, top: float) -> float:
    return TOP + PLOT_HEIGHT * (1 - min(lag, top) / top)


def _ends(points: Sequence[Point], window: float, gap: float, now: float) -> list[float]:
    """Where each step ends: at the next, or after a step and ``gap`` (a prober stopped)."""
    step = window / POINTS
    nexts = [p.at for p in points[1:]] + [now]
    return [min(following, p.at + step + gap) for p, following in zip(points, nexts, strict=False)]  # (none: none)


def lag_chart(alias: str, points: Sequence[Point], tolerance: float, window: float, gap: float, now: float) -> LagChart:
    """The chart of ``points`` over the ``window`` seconds before ``now`` (monotonic); ``gap``:
    how long a step may be followed by no other before the line breaks (a stalled prober)."""
    start = now - window
    points = [p for p in points if start <= p.at <= now]
    ends = _ends(points, window, gap, now)
    steps = tuple(zip(points, ends, strict=True))
    peak = max((p.lag_seconds for p in points if p.lag_seconds is not None and math.isfinite(p.lag_seconds)),
               default=0.0)  # fmt: skip
    top = top_of(peak, tolerance)

    def x(at: float) -> float:
        return LEFT + PLOT_WIDTH * min(1.0, max(0.0, (at - start) / window))

    lines: list[str] = []
    bands: list[Band] = []
    run: list[tuple[float, float]] = []
    band_end = None  # when the last band ends
    for i, (p, end) in enumerate(steps):
        if p.lag_seconds is not None:
            run.append((x(p.at), _y(p.lag_seconds, top)))
        if run and (p.lag_seconds is None or i + 1 == len(points) or points[i + 1].at > end):
            if len(run) == 1:  # alone: a flat stroke to its step's end
                run.append((x(end), run[0][1]))
            lines.append(" ".join(f"{a:.1f},{b:.1f}" for a, b in run))
            run = []
        if p.down or not p.usable:
            if bands and bands[-1].down == p.down and band_end == p.at:  # the same stretch goes on
                last = bands[-1]
                bands[-1] = Band(last.x, x(end) - last.x, p.down, last.seconds + end - p.at)
            else:
                bands.append(Band(x(p.at), x(end) - x(p.at), p.down, end - p.at))
            band_end = end
    newest = points[-1] if points else None
    return LagChart(alias, window, tolerance, top, tuple(lines), tuple(bands), newest, peak, steps)


def _config(report: StatusReport) -> Config | None:
    """The settings the report was made with; None when they are broken (the report says why)."""
    return None if report.max_staleness_seconds is None else get_config()


def lag_charts(report: StatusReport, now: float | None = None) -> list[LagChart]:
    """A chart per replica, in ``REPLICAS`` order, from the report's history."""
    config = _config(report)
    if config is None or not config.lag_history_seconds:
        return []
    now = time.monotonic() if now is None else now
    return [
        lag_chart(alias, report.history.get(alias, ()), config.max_staleness_seconds, config.lag_history_seconds,
                  config.stall_limit, now)
        for alias in config.replicas
    ]  # fmt: skip


def sparkline(chart: LagChart, columns: int, now: float) -> str:
    """``chart`` (drawn up to ``now``) in ``columns`` characters, each the worst of its stretch of
    time: ``LOW`` within the tolerance, ``HIGH`` past it (up to the chart's top), ``DOWN``, ``NO_DATA``."""
    start, width = now - chart.window, chart.window / columns
    cells = []
    for column in range(columns):
        begin, end = start + column * width, start + (column + 1) * width
        last = column == columns - 1  # (up to now itself: the newest point may be that new)
        covering = [p for p, until in chart.steps if (p.at < end or last) and until > begin]
        lags = [p.lag_seconds for p in covering if p.lag_seconds is not None]
        if not covering:
            cells.append(NO_DATA)
        elif any(p.down for p in covering) or not lags:
            cells.append(DOWN)
        else:
            cells.append(_level(max(lags), chart.tolerance, chart.top))
    return "".join(cells)


def _level(lag: float, tolerance: float, top: float) -> str:
    if lag <= tolerance:
        return LOW[min(3, int(lag / tolerance * 4))] if tolerance else LOW[0]
    return HIGH[min(3, int((min(lag, top) - tolerance) / (top - tolerance) * 4))]


def trend_lines(report: StatusReport, columns: int = 60, now: float | None = None) -> list[str]:
    """The terminal's picture of the report's history: a legend, then a sparkline per replica."""
    config = _config(report)
    if config is None or not config.lag_history_seconds:
        return []
    now = time.monotonic() if now is None else now
    charts = lag_charts(report, now)
    tolerance, span = config.max_staleness_seconds, _span(config.lag_history_seconds, config.lag_history_seconds)
    lines = [f"lag over the last {span}: {LOW} within the tolerance ({tolerance:g} s), {HIGH} past it, {DOWN} down, "
             f"{NO_DATA} no data"]  # fmt: skip
    width = max((len(c.alias) for c in charts), default=0)
    for chart in charts:
        line = sparkline(chart, columns, now)
        lag = None if chart.newest is None else chart.newest.lag_seconds
        now_lag = "-" if lag is None else f"{lag:.2f} s"
        lines.append(f"  {chart.alias.ljust(width)}  {line}  now {now_lag}, peak {chart.peak:.2f} s")
    return lines
