"""Read-your-writes by causal token: share of reads served by replicas after a write.

    .venv/bin/python bench/read_your_writes.py [--writes 3] [--seconds 15]

A client posts a gist, then reads it back as fast as it can for ``--seconds``, with the
causal-token cookie, through the whole Django stack (in process) on the local cluster. Each
read's node comes from the X-DB-Served-By header; a 404 would be a stale read. A 15 s time
pin (django-multidb-router's default, after a write) would send every one of these reads to
the primary: 0% on replicas by construction. Prints one name=value line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()

    import django

    django.setup()
    from django.test import Client, override_settings

    from dbrouting.health import cache

    cache.wait_for_rounds(3)
    nodes: Counter[str] = Counter()
    stale = 0
    first_replica_ms: list[float] = []
    with override_settings(DBROUTING={"SERVED_BY_HEADER": True}):
        for _ in range(args.writes):
            client = Client(HTTP_HOST="localhost")
            body = {"title": "ryw", "content": "bench", "latitude": 48.85, "longitude": 2.35}
            created = client.post("/api/gists/", data=json.dumps(body), content_type="application/json")
            assert created.status_code == 201, created.content
            url = created["Location"]
            start = time.monotonic()
            seen_replica = False
            while time.monotonic() - start < args.seconds:
                response = client.get(url)
                if response.status_code == 404:
                    stale += 1
                node = response.get("X-DB-Served-By", "?")
                nodes[node] += 1
                if not seen_replica and node.startswith("replica"):
                    seen_replica = True
                    first_replica_ms.append((time.monotonic() - start) * 1000)
    total = sum(nodes.values())
    on_replicas = sum(n for node, n in nodes.items() if node.startswith("replica"))
    print(f"reads={total}")
    print(f"b6_replica_share_after_write={on_replicas / total:.4f}")
    print("b6_replica_share_with_15s_time_pin=0.0000")
    print(f"b6_stale_reads={stale}")
    print(f"first_replica_read_after_write_ms_max={max(first_replica_ms, default=float('nan')):.0f}")
    print(f"nodes={dict(nodes)}")


if __name__ == "__main__":
    main()
