"""B6 read-your-writes: share of reads served by replicas after a write, and stale reads.

    .venv/bin/python bench/read_your_writes.py [--writes 3] [--seconds 15] [--quick]

A client posts a gist (``POST /api/gists/``), then reads it back (``GET`` its URL) as fast as it
can for ``--seconds``, keeping its cookies, through the whole Django stack (test ``Client``), in
two processes that take turns (A B, B A, ...):

- ``dbrouting``: the project's settings: the causal token (a cookie with the primary's WAL
  position) sends the client's reads to replicas that have replayed its write;
- ``multidb``: django-multidb-router's ``PinningReplicaRouter`` and ``PinningRouterMiddleware``:
  a cookie pins the client's reads to the primary for 15 s after a write (its default).

Which nodes served each read comes from ``bench.served_by`` (the same measure on both sides); a
404 would be a stale read (the replica did not have the gist yet).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common, sides

SIDES = ["dbrouting", "multidb"]


def side(args: Any) -> None:
    common.start_django(common.cluster_of(args), router=args.side, BENCH_SERVED_BY="1")
    from django.test import Client

    from bench.served_by import HEADER

    if args.side == "dbrouting":
        common.wait_until_usable()

    def session(seconds: float) -> dict[str, Any]:
        client = Client(HTTP_HOST="localhost")
        body = {"title": "ryw", "content": "bench", "latitude": 48.85, "longitude": 2.35}
        created = client.post("/api/gists/", data=json.dumps(body), content_type="application/json")
        assert created.status_code == 201, created.content
        url = created["Location"]
        start = time.monotonic()
        reads: list[tuple[float, str, int]] = []
        while (elapsed := time.monotonic() - start) < seconds:
            response = client.get(url)
            reads.append((elapsed, response[HEADER], response.status_code))
        return {"reads": reads}

    sides.serve({"session": session})


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--writes", type=int, default=3, help="writes per side")
    p.add_argument("--seconds", type=float, default=15.0, help="reading after each write")
    args = common.parse(p)
    if args.quick:
        args.writes, args.seconds = 1, 1.0
    if args.side:
        return side(args)
    figures = common.Figures("b6", args)
    with common.running_cluster(args) as cluster:
        common.start_django(cluster)
        common.ensure_gists(cluster, 100)
        procs = {name: sides.Side(__file__, name, args, {}) for name in SIDES}
        reads: dict[str, list[tuple[float, str, int]]] = {name: [] for name in SIDES}
        try:
            for _, name in common.abba(SIDES, args.writes):
                reads[name] += procs[name].call("session", seconds=args.seconds)["reads"]
        finally:
            for s in procs.values():
                s.close()

    shares = {}
    for name in SIDES:
        nodes = Counter(node for _, node, _ in reads[name])
        on_replicas = sum(
            1 for _, node, _ in reads[name] if node and all(a.startswith("replica") for a in node.split(","))
        )
        shares[name] = on_replicas / max(1, len(reads[name]))
        suffix = "" if name == "dbrouting" else "_multidb"
        figures.add(f"b6_reads{suffix}", len(reads[name]))
        figures.add(f"b6_stale_reads{suffix}", sum(1 for _, _, status in reads[name] if status == 404))
        figures.add(f"b6_nodes{suffix}", json.dumps(dict(nodes), sort_keys=True))
    figures.add("b6_replica_share_after_write", shares["dbrouting"], 4)
    figures.add("b6_replica_share_with_15s_time_pin", shares["multidb"], 4)
    firsts, start = [], None
    for elapsed, node, _ in reads["dbrouting"]:
        if start is None or elapsed < start:  # a new write's reads begin
            firsts.append(None)
        start = elapsed
        if firsts[-1] is None and node.startswith("replica"):
            firsts[-1] = elapsed * 1000
    figures.add(
        "b6_first_replica_read_after_write_ms_max", max((f for f in firsts if f is not None), default=float("nan")), 0
    )
    figures.add("b6_writes_per_side", args.writes)

    def draw(ax: Any) -> None:
        width = 0.5 if args.seconds >= 5 else args.seconds / 10
        bins = [i * width for i in range(int(args.seconds / width) + 1)]
        for name, label, color in (
            ("dbrouting", "causal token", "#369"),
            ("multidb", "15 s time pin (multidb)", "#c96"),
        ):
            share = []
            for low in bins[:-1]:
                window = [node for elapsed, node, _ in reads[name] if low <= elapsed < low + width]
                share.append(100 * sum(n.startswith("replica") for n in window) / max(1, len(window)))
            ax.step(bins[:-1], share, where="post", color=color, label=label)
        ax.set_ylim(-5, 105)
        ax.set_xlabel("seconds since the client's write")
        ax.set_ylabel("% of the client's reads on replicas")
        ax.legend(fontsize=8)

    figures.plot("b6-read-your-writes", draw, "B6 where a client's reads go after its own write")
    figures.save()


if __name__ == "__main__":
    main()
