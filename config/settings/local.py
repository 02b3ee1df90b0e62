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
_replicas = int(os.environ.get("PGCLUSTER_REPLICAS", "2"))
_credentials = "gists:gists-dev-password"
DATABASES = databases_from_env(
    env,
    default_url=f"postgres://{_credentials}@127.0.0.1:{_port}/gists",
    default_replica_urls=",".join(
        f"postgres://{_credentials}@127.0.0.1:{_port + i}/gists" for i in range(1, _replicas + 1)
    ),
)
