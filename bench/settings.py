"""Django settings for the benchmarks: the project's local settings on the benchmark cluster.

``bench.common.use_cluster`` sets ``DATABASE_URL`` / ``DATABASE_REPLICA_URLS`` to the benchmark
cluster's nodes before Django starts. ``BENCH_ROUTER`` picks the router under test:

- ``dbrouting`` (default): the project as it ships (router, middleware, failover engine);
- ``none``: no router, no ``dbrouting`` app or middleware: every query on ``default``;
- ``multidb``: django-multidb-router's ``PinningReplicaRouter`` and its pinning-cookie
  middleware (``MULTIDB_PINNING_SECONDS``, 15 s by default), replicas on Django's own engine.

``BENCH_SERVED_BY=1`` adds ``bench.served_by.ServedByMiddleware`` (which nodes ran a request's SQL).
"""

from __future__ import annotations

import os

from config.databases import ENGINE
from config.settings.local import *  # noqa: F403
from config.settings.local import DATABASES, INSTALLED_APPS, MIDDLEWARE

DEBUG = False  # DEBUG keeps every query in memory: not what production measures
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
RATELIMIT_ENABLE = False  # every client of a benchmark is one address: the limits would measure themselves

ROUTER = os.environ.get("BENCH_ROUTER", "dbrouting")
REPLICA_DATABASES = [alias for alias in DATABASES if alias != "default"]
_ours = "dbrouting.middleware.RoutingMiddleware"

if ROUTER == "none":
    DATABASE_ROUTERS: list[str] = []
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "dbrouting"]
    MIDDLEWARE = [m for m in MIDDLEWARE if m != _ours]
elif ROUTER == "multidb":
    DATABASE_ROUTERS = ["multidb.PinningReplicaRouter"]
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "dbrouting"]
    MIDDLEWARE = [("multidb.middleware.PinningRouterMiddleware" if m == _ours else m) for m in MIDDLEWARE]
    for _alias in REPLICA_DATABASES:
        DATABASES[_alias]["ENGINE"] = ENGINE  # Django's engine (with django-prometheus' counters): no failover
elif ROUTER != "dbrouting":
    raise ValueError(f"BENCH_ROUTER must be dbrouting, none or multidb, not {ROUTER!r}")

if os.environ.get("BENCH_SERVED_BY") == "1":
    MIDDLEWARE = ["bench.served_by.ServedByMiddleware", *MIDDLEWARE]
