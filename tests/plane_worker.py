"""An app process of its own for the per-host prober's tests (tests/test_plane.py) and bench B7:
it reads through the router in a loop and prints one JSON line per tick: its role on the host's
plane, its probe connections, its cache's states, its reads and failed reads, its lag history's
length, first and newest step.

    python -m tests.plane_worker SECONDS [--read]   (from the project folder)

Settings come from the environment (DJANGO_SETTINGS_MODULE, DATABASE_URL, DBROUTING_*).
"""

from __future__ import annotations

import json
import os
import sys
import time

import django


def role(cache: object) -> str:
    plane = getattr(cache, "_plane", None)
    if plane is None:
        return "alone"
    held = plane._held
    return "prober" if "prober" in held else "stand-in" if "deputy" in held else "follower"


def main() -> None:
    seconds, read = float(sys.argv[1]), "--read" in sys.argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    django.setup()
    from django.db import connections

    from dbrouting import routing_scope
    from dbrouting.health import cache
    from dbrouting.router import decide

    cache.snapshot()
    reads, errors, served = 0, [], set()
    states: dict[str, str] = {}
    changes: list[tuple[float, str, str]] = []  # (monotonic, alias, state): the clock is the host's
    end = time.monotonic() + seconds
    next_report = 0.0
    while time.monotonic() < end:
        if read:
            with routing_scope():
                alias = decide()
                try:
                    with connections[alias].cursor() as cursor:
                        cursor.execute("SELECT current_setting('port')")
                        served.add(alias)
                    reads += 1
                except Exception as exc:
                    errors.append(f"{alias}: {exc}")
        for alias, health in cache.latest.replicas.items():
            if states.get(alias) != health.state:
                states[alias] = health.state
                changes.append((time.monotonic(), alias, health.state))
        if time.monotonic() >= next_report:
            kept = cache._probes.kept
            print(json.dumps({
                "pid": os.getpid(), "at": time.monotonic(), "role": role(cache), "rounds": cache.rounds,
                "probe_connections": len(kept._idle) + len(kept._busy),
                "states": {a: h.state for a, h in cache.latest.replicas.items()},
                "reads": reads, "errors": errors[-3:], "error_count": len(errors), "served": sorted(served),
                "changes": changes[-20:],
                "history": {a: [len(p), p[0].at, p[-1].at] for a, p in cache.latest.history.items() if p},
            }), flush=True)  # fmt: skip
            next_report = time.monotonic() + 0.1
        time.sleep(0.01)
    cache.reset()


if __name__ == "__main__":
    main()
