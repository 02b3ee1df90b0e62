"""Detection times of the health cache, with the project's default settings, on the local cluster.

    .venv/bin/python bench/detection.py

- lag: a replica's replay is paused, one write made; seconds from the moment its lag passes the
  tolerance (write + MAX_STALENESS_SECONDS) to its exclusion (negative: excluded early, because
  staleness counts from the last probe that saw it caught up), and from resume to readmission;
- kill -9: a replica killed while a thread reads through the router; seconds to routing away,
  failed reads, and seconds from restart to readmission.
Prints one name=value line per figure.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def wait(predicate: object, timeout: float = 60.0) -> float:
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise SystemExit("bench: condition not met in time")
        time.sleep(0.005)
    return time.monotonic()


def main() -> None:
    import django

    django.setup()
    from pgcluster import Cluster

    from dbrouting import replica_health
    from dbrouting.conf import get_config
    from dbrouting.health import cache
    from gists.models import Gist
    from tests.routing_helpers import ReadLoop

    cluster = Cluster.from_env()
    config = get_config()
    if not Gist.objects.using("default").exists():
        Gist.objects.using("default").create(title="bench", content="c", latitude=0, longitude=0)

    def state(alias: str) -> str:
        return replica_health().get(alias, None).state if alias in replica_health() else "unknown"

    cache.wait_for_rounds(3)
    wait(lambda: state("replica1") == "ok" and state("replica2") == "ok")
    print(f"check_interval_seconds={config.check_interval_seconds}")
    print(f"max_staleness_seconds={config.max_staleness_seconds}")

    # Lag past the tolerance.
    cluster.psql(cluster.node("replica1"), "SELECT pg_wal_replay_pause()")
    try:
        Gist.objects.using("default").create(title="lag", content="c", latitude=0, longitude=0)
        written = time.monotonic()
        excluded = wait(lambda: state("replica1") == "lagging")
    finally:
        cluster.psql(cluster.node("replica1"), "SELECT pg_wal_replay_resume()")
    resumed = time.monotonic()
    back = wait(lambda: state("replica1") == "ok")
    print(f"lag_exclusion_seconds={excluded - (written + config.max_staleness_seconds):.3f}")
    print(f"lag_readmission_seconds={back - resumed:.3f}")

    # kill -9 under a read loop.
    loop = ReadLoop().start()
    wait(lambda: loop.served_since(0) >= {"replica1", "replica2"})
    cluster.signal("replica1", signal.SIGKILL)
    killed = time.monotonic()
    routed_away = wait(lambda: state("replica1") == "down")
    time.sleep(1.0)
    cluster.start("replica1")
    restarted = time.monotonic()
    readmitted = wait(lambda: state("replica1") == "ok")
    wait(lambda: "replica1" in loop.served_since(readmitted))
    loop.stop()
    last_on_victim = max((t for t, a in loop.served if a == "replica1" and t < restarted), default=killed)
    print(f"kill9_routing_away_seconds={routed_away - killed:.3f}")
    print(f"kill9_last_read_on_victim_after_kill_seconds={max(0.0, last_on_victim - killed):.3f}")
    print(f"kill9_failed_reads={len(loop.errors)}")
    print(f"kill9_reads_during_fault={len([t for t, _ in loop.served if killed <= t <= readmitted])}")
    print(f"restart_readmission_seconds={readmitted - restarted:.3f}")
    print(f"read_p99_ms={sorted(loop.latencies)[int(len(loop.latencies) * 0.99)] * 1000:.2f}")
    print(f"read_max_ms={max(loop.latencies) * 1000:.2f}")


if __name__ == "__main__":
    main()
