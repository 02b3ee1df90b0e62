"""What the WSGI and ASGI entry points (and gunicorn's master) share: production settings unless
DJANGO_SETTINGS_MODULE names others, so that a deploy that forgets it refuses to start (no
SECRET_KEY, ALLOWED_HOSTS or DATABASE_URL) rather than serve the development settings; and a
configuration error as one line, no traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from django.core.exceptions import ImproperlyConfigured

App = TypeVar("App")
# gunicorn's arbiter stops (instead of starting worker after worker) on this exit code of a worker.
APP_LOAD_ERROR = 4


def _refuse(exc: ImproperlyConfigured) -> NoReturn:
    print(f"configuration error: {exc}", file=sys.stderr)
    sys.exit(APP_LOAD_ERROR)


def check_settings() -> None:
    """Load the settings now (gunicorn's master does, before any worker starts)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 (loads the settings module)
    except ImproperlyConfigured as exc:  # the operator's to fix
        _refuse(exc)


def application(build: Callable[[], App]) -> App:
    check_settings()
    try:
        return build()
    except ImproperlyConfigured as exc:
        _refuse(exc)
