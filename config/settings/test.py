"""Test settings: the local cluster, with fast password hashing."""

from __future__ import annotations

from .local import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Probe often so fault tests detect state changes quickly.
# The X-DB-Served-By header shows tests which node served a request's reads.
DBROUTING = {**DBROUTING, "CHECK_INTERVAL_SECONDS": 0.2, "SERVED_BY_HEADER": True}  # noqa: F405

# Django's plain static storage (no manifest, no collectstatic needed), and WhiteNoise looking
# files up per request rather than scanning a STATIC_ROOT that a fresh clone does not have.
WHITENOISE_AUTOREFRESH = True
