"""Test settings: the local cluster, with fast password hashing."""

from __future__ import annotations

from .local import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Probe often so fault tests detect state changes quickly.
DBROUTING = {**DBROUTING, "CHECK_INTERVAL_SECONDS": 0.2}  # noqa: F405
