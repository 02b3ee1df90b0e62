"""B2 request overhead: requests per second of the list and nearby views, our router versus none.

    .venv/bin/python bench/request_overhead.py [--rows 200000] [--requests 100] [--rounds 20] [--quick]

Two processes serve the same requests through Django's whole WSGI stack (middleware, view,
template), one request at a time, reading from the same single PostgreSQL node (replica1):

- ``dbrouting``: the project's settings, ``default`` on the primary and ``replica1`` as the only
  replica: every read is routed there by ``PrimaryReplicaRouter`` (with ``RoutingMiddleware``);
- ``none``: no router, no ``dbrouting`` middleware or app, ``default`` on replica1 itself;
- ``dbrouting_idle_prober``: as ``dbrouting``, but ``CHECK_INTERVAL_SECONDS`` = 3600: after its
  first round the health prober sleeps. It tells the cost of routing from the cost of probing
  (a thread of the process that queries each node every 0.5 s, on a connection it keeps).

Rounds alternate the sides (A B C, C B A, ...); each runs ``--requests`` requests of a view. The
figures are medians over rounds of the per-round ratio of requests per second (ours / none).
"""

from __future__ import annotations

import io
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common, sides

SIDES = ["dbrouting", "none", "dbrouting_idle_prober"]
VIEWS = ["list", "nearby"]


def paths(count: int = 64) -> dict[str, list[tuple[str, str]]]:
    rng = random.Random(2026)  # noqa: S311 (the same points on both sides, not secrets)
    nearby = []
    for _ in range(count):
        lat, lng = rng.choice(common.CITIES)
        lat, lng = lat + rng.uniform(-0.1, 0.1), lng + rng.uniform(-0.1, 0.1)
        nearby.append(("/gists/nearby/", f"lat={lat:.5f}&lng={lng:.5f}&radius_m=5000&limit=20"))
    return {"list": [("/gists/", "")], "nearby": nearby}


def side(args: Any) -> None:
    """A child process: one side, serving ``run`` requests."""
    cluster = common.cluster_of(args)
    if args.side.startswith("dbrouting"):
        idle = {"DBROUTING_CHECK_INTERVAL_SECONDS": "3600"} if args.side == "dbrouting_idle_prober" else {}
        common.start_django(cluster, router="dbrouting", default="primary", replicas=["replica1"], **idle)
        common.wait_until_usable(["replica1"])
    else:
        common.start_django(cluster, router="none", default="replica1", replicas=[])
    from django.core.handlers.wsgi import WSGIHandler
    from django.db.models.expressions import RawSQL

    from gists.models import Gist

    handler = WSGIHandler()
    urls = paths()

    def get(path: str, query: str) -> str:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "localhost",
            "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost", "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
        }  # fmt: skip
        status: list[str] = []
        body = handler(environ, lambda s, headers, exc_info=None: status.append(s))
        for _ in body:
            pass
        body.close()  # request_finished: what a WSGI server does after each response
        return status[0]

    def run(view: str, n: int) -> dict[str, Any]:
        errors = 0
        start = time.perf_counter()
        for i in range(n):
            path, query = urls[view][i % len(urls[view])]
            errors += not get(path, query).startswith("200")
        return {"seconds": time.perf_counter() - start, "errors": errors}

    def port() -> int:
        node_port = RawSQL("current_setting('port')::int", ())
        return int(Gist.objects.annotate(p=node_port).values_list("p", flat=True).first())

    sides.serve({"run": run, "port": port})


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--requests", type=int, default=100, help="requests per side per view per round")
    p.add_argument("--rounds", type=int, default=20)
    args = common.parse(p)
    if args.quick:
        args.rows, args.requests, args.rounds = 2_000, 20, 2
    if args.side:
        return side(args)
    figures = common.Figures("b2", args)
    with common.running_cluster(args) as cluster:
        common.start_django(cluster)
        figures.add("b2_rows", common.ensure_gists(cluster, args.rows))
        procs = {name: sides.Side(__file__, name, args, {}) for name in SIDES}
        try:
            ports = {name: s.call("port") for name, s in procs.items()}
            assert set(ports.values()) == {cluster.node("replica1").port}, f"not the same node: {ports}"
            for s in procs.values():  # warm: connections, templates, caches
                for view in VIEWS:
                    s.call("run", view=view, n=max(10, args.requests // 4))
            rps: dict[tuple[str, str], list[float]] = {(v, s): [] for v in VIEWS for s in SIDES}
            errors = 0
            for _, name in common.abba(SIDES, args.rounds):
                for view in VIEWS:
                    result = procs[name].call("run", view=view, n=args.requests)
                    rps[view, name].append(args.requests / result["seconds"])
                    errors += result["errors"]
        finally:
            for s in procs.values():
                s.close()

    def ratio(view: str, side: str) -> float:
        return common.median([a / b for a, b in zip(rps[view, side], rps[view, "none"], strict=True)])

    ratios = {view: ratio(view, "dbrouting") for view in VIEWS}
    for view in VIEWS:
        figures.add(f"b2_{view}_rps_dbrouting", common.median(rps[view, "dbrouting"]), 1)
        figures.add(f"b2_{view}_rps_no_router", common.median(rps[view, "none"]), 1)
        figures.add(f"b2_{view}_rps_dbrouting_idle_prober", common.median(rps[view, "dbrouting_idle_prober"]), 1)
        figures.add(f"b2_{view}_ratio_vs_no_router", ratios[view])
        figures.add(f"b2_{view}_ratio_vs_no_router_idle_prober", ratio(view, "dbrouting_idle_prober"))
    figures.add("b2_request_ratio_vs_no_router", min(ratios.values()))
    figures.add("b2_errors", errors)
    figures.add("b2_requests_per_side_per_view", args.requests * args.rounds)

    def draw(ax: Any) -> None:
        width = 0.27
        styles = (("dbrouting", "dbrouting", "#369"), ("none", "no router", "#999"))
        styles += (("dbrouting_idle_prober", "dbrouting, prober idle", "#9bd"),)
        for i, (name, label, color) in enumerate(styles):
            xs = [j + (i - 1) * width for j in range(len(VIEWS))]
            bars = ax.bar(xs, [common.median(rps[v, name]) for v in VIEWS], width, label=label, color=color)
            ax.bar_label(bars, fmt="%.0f", fontsize=8)
        ax.set_xticks(range(len(VIEWS)), [f"{v} view\nratio {ratios[v]:.3f}" for v in VIEWS])
        ax.set_ylabel("requests per second (median)")
        ax.legend(fontsize=8)

    figures.plot("b2-request-overhead", draw, "B2 requests per second, same node, one at a time")
    figures.save()


if __name__ == "__main__":
    main()
