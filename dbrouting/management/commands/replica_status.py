"""``manage.py replica_status``: every node after a fresh probe round, as a table or JSON; with
``--watch``, again and again, each replica's lag over the last minutes drawn under the table.

Exit codes: 0 all healthy; 1 a replica lagging, down, promoted or not streaming; 2 the primary
unreachable or the configuration wrong. Problems go to stderr, one line each.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dbrouting.charts import trend_lines
from dbrouting.status import COLUMNS, StatusReport, measure, table_rows


class Command(BaseCommand):
    help = "Probe the primary and every replica now: reachability, WAL receipt, replay position, lag, usable."
    requires_system_checks: list[str] = []  # report a broken configuration ourselves, with exit code 2

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print the report as JSON (schema in the README)"
        )
        parser.add_argument(
            "--watch", nargs="?", type=float, const=2.0, default=None, metavar="SECONDS",
            help="measure again every SECONDS (default 2) until interrupted, the lag's trend under the table",
        )  # fmt: skip
        parser.add_argument("--count", type=int, default=None, metavar="K", help="with --watch: stop after K reports")

    def handle(self, *args: Any, as_json: bool, watch: float | None, count: int | None, **options: Any) -> None:
        if watch is not None and watch <= 0:
            raise CommandError("--watch needs a positive number of seconds")
        if count is not None and (watch is None or count < 1):
            raise CommandError("--count needs --watch and a positive number of reports")
        code = 0
        # This command reports every state itself: the health cache's log lines would repeat it.
        logger = logging.getLogger("dbrouting")
        level = logger.level
        logger.setLevel(logging.CRITICAL)
        try:
            for shown in itertools.count(1):
                report = measure()
                if watch is not None and not as_json:
                    self.stdout.write("\x1b[2J\x1b[H", ending="")  # clear the terminal between tables
                self._print(report, as_json=as_json, trend=watch is not None)
                code = report.exit_code
                if watch is None or shown == count:
                    break
                time.sleep(watch)
        except KeyboardInterrupt:
            pass
        finally:
            logger.setLevel(level)
        if code:
            raise SystemExit(code)

    def _print(self, report: StatusReport, as_json: bool, trend: bool = False) -> None:
        if as_json or report.nodes:  # a configuration error is one line on stderr, no empty table
            self.stdout.write(
                json.dumps(report.to_dict(), indent=2, sort_keys=True) if as_json else render_table(report)
            )
        if trend and not as_json and report.nodes:
            self.stdout.write("\n".join(["", *trend_lines(report)]))
        for error in report.errors:
            self.stderr.write(f"replica_status: {error}")


def render_table(report: StatusReport) -> str:
    rows = [COLUMNS, *table_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    now = " (in force now: no replica within the tolerance)" if report.all_behind else ""
    lines = [
        f"checked at {report.checked_at}, staleness tolerance {report.max_staleness_seconds} s, "
        f"all-behind policy {report.all_behind_policy}{now}"
    ]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += ["", f"primary's pg_stat_replication: {len(report.replication)} standby(s)"]
    for r in report.replication:
        lags = ", ".join(
            f"{kind} {'-' if r[f'{kind}_lag_seconds'] is None else format(r[f'{kind}_lag_seconds'], '.3f') + 's'}"
            for kind in ("write", "flush", "replay")
        )
        lines.append(
            f"  {r['application_name']} from {r['client_addr']}: {r['state']} ({r['sync_state']}); lag {lags}; "
            f"replay {r['replay_lag_bytes']} bytes behind"
        )
    return "\n".join(lines)
