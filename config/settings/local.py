"""Development settings: every variable has a default pointing at the local cluster.

Never use in production: the secret key below is public. ``config.settings.production``
refuses to start without real values.
"""

from __future__ import annotations

import os

from config.databases import databases_from_env

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-local-development-only-key-do-not-deploy")

# The local cluster of scripts/pgcluster.py: primary on the base port, replicas after it.
_port = int(os.environ.get("PGCLUSTER_PORT_BASE", "25432"))
# PGCLUSTER_PGBOUNCER=1: through the PgBouncer in front of each node (scripts/pgcluster.py).
_pgbouncer = os.environ.get("PGCLUSTER_PGBOUNCER") == "1"
if _pgbouncer:
    _port += 50  # pgcluster.PGBOUNCER_PORT_OFFSET
_replicas = int(os.environ.get("PGCLUSTER_REPLICAS", "2"))
_credentials = "gists:gists-dev-password"
DATABASES = databases_from_env(
    env,
    default_url=f"postgres://{_credentials}@127.0.0.1:{_port}/gists",
    default_replica_urls=",".join(
        f"postgres://{_credentials}@127.0.0.1:{_port + i}/gists" for i in range(1, _replicas + 1)
    ),
)
if _pgbouncer:  # transaction pooling: no cursor may outlive its transaction (Django's advice)
    for _database in DATABASES.values():
        _database["DISABLE_SERVER_SIDE_CURSORS"] = True
