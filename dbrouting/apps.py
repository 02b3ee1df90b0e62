from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate, pre_migrate


class DbRoutingConfig(AppConfig):
    name = "dbrouting"
    verbose_name = "Database routing"

    def ready(self) -> None:
        from . import checks  # noqa: F401 (registers the system checks)
        from .context import set_migrating
        from .routing import install_write_detector

        # Reads made while migrations run (a data migration without .using()) go to the primary:
        # the replicas may not have the new schema yet.
        def started(**kwargs: Any) -> None:
            set_migrating(True)

        def finished(**kwargs: Any) -> None:
            set_migrating(False)

        pre_migrate.connect(started, dispatch_uid="dbrouting.migrating.start", weak=False)
        post_migrate.connect(finished, dispatch_uid="dbrouting.migrating.end", weak=False)
        connection_created.connect(install_write_detector, dispatch_uid="dbrouting.write_detector")
