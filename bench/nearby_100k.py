"""Query latency: nearby search and deep list pages on N gists (default 100,000), on the primary.

    .venv/bin/python bench/nearby_100k.py [--rows 100000] [--repeat 200] [--quick]

On the benchmark cluster (``bench/common.py``), in a scratch database (``gists_bench``) that it
creates, migrates, fills with gists spread uniformly over the sphere, and drops. Prints one
``name=value`` line per figure, then the EXPLAIN ANALYZE of one nearby query.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = common.parse(parser)
    if args.quick:
        args.rows, args.repeat = 2_000, 20
    figures = common.Figures("queries", args)
    with common.running_cluster(args) as cluster:
        common.start_django(cluster)
        measure(args, figures)
    figures.save()


def measure(args: argparse.Namespace, figures: common.Figures) -> None:
    from django.core.management import call_command
    from django.db import connections

    from gists import geo
    from gists.models import Gist
    from gists.pagination import Cursor, page

    main_name = connections["default"].settings_dict["NAME"]
    with connections["default"].cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS gists_bench")
        cur.execute("CREATE DATABASE gists_bench")
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = "gists_bench"
    try:
        call_command("migrate", verbosity=0, database="default")
        with connections["default"].cursor() as cur:
            cur.execute(
                """
                INSERT INTO gists_gist (id, gist_id, title, content, latitude, longitude, created_at)
                SELECT gen_random_uuid(), md5(i::text), 'title ' || i, 'content',
                       degrees(asin(2 * random() - 1)), random() * 360 - 180,
                       now() - i * interval '1 second'
                FROM generate_series(1, %s) AS i
                """,
                [args.rows],
            )
            cur.execute("ANALYZE gists_gist")
        qs = Gist.objects.using("default")
        repeat: int = args.repeat

        def timed(fn: object) -> list[float]:
            out = []
            for _ in range(repeat):
                start = time.perf_counter()
                fn()  # type: ignore[operator]
                out.append((time.perf_counter() - start) * 1000)
            return out

        # Uniform on the sphere: about 25 rows within 100 km of a point at 100k rows.
        nearby = timed(lambda: list(geo.nearby(qs, 48.85, 2.35, 100_000, 20)))
        # The widest search a client may ask: the whole Earth, the largest limit.
        wide = timed(lambda: list(geo.nearby(qs, 48.85, 2.35, 20_000_000, 100)))
        first = timed(lambda: page(qs, None, 20))
        deep_row = qs.order_by("-created_at", "-id")[min(20_000, args.rows - 21)]
        deep = timed(lambda: page(qs, Cursor(deep_row.created_at, deep_row.id), 20))
        found = len(list(geo.nearby(qs, 48.85, 2.35, 100_000, 20)))
        figures.add("rows", args.rows)
        figures.add("nearby_results", found)
        figures.add("nearby_ms_p50", statistics.median(nearby))
        figures.add("nearby_ms_p95", statistics.quantiles(nearby, n=20)[-1])
        figures.add("nearby_whole_earth_limit_100_ms_p50", statistics.median(wide))
        figures.add("list_page1_ms_p50", statistics.median(first))
        figures.add("list_page1000_ms_p50", statistics.median(deep))
        figures.add("list_page1000_vs_page1_ratio", statistics.median(deep) / statistics.median(first), 2)
        print("--- EXPLAIN ANALYZE (nearby, 100 km, limit 20)")
        print(geo.nearby(qs, 48.85, 2.35, 100_000, 20).explain(analyze=True))
    finally:
        connections["default"].close()
        connections["default"].settings_dict["NAME"] = main_name
        with connections["default"].cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS gists_bench")


if __name__ == "__main__":
    main()
