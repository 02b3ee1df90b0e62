"""Django's ``migrate``, with every read on the primary while it runs.

A data migration that reads without ``.using()`` must see the primary's new schema, which the
replicas may not have replayed yet. ``use_primary()`` holds for the command's whole run and is
left however the command ends, a failed migration included.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import migrate

from dbrouting import routing_scope, use_primary


class Command(migrate.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        with routing_scope(), use_primary():
            super().handle(*args, **options)
