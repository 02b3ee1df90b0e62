from __future__ import annotations

import importlib.util

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class DbRoutingConfig(AppConfig):
    name = "dbrouting"
    verbose_name = "Database routing"

    def ready(self) -> None:
        from . import checks  # noqa: F401 (registers the system checks)
        from .writes import install_write_detector

        connection_created.connect(install_write_detector, dispatch_uid="dbrouting.write_detector")
        if importlib.util.find_spec("celery") is not None:  # Celery is optional
            from .contrib import celery

            celery.connect()
