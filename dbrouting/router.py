"""``DATABASE_ROUTERS = ["dbrouting.router.PrimaryReplicaRouter"]``: decisions only, no I/O."""

from __future__ import annotations

from typing import Any

from .conf import get_config
from .routing import note_write, read_alias


class PrimaryReplicaRouter:
    """Writes and migrations on the primary; reads on a usable replica, else the primary."""

    db_for_read = staticmethod(read_alias)  # (model, **hints) -> alias; also called unbound with self

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        return note_write()

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        config = get_config()
        ours = {config.primary, *config.replicas}
        # Same data on every node: objects read anywhere may be related.
        if obj1._state.db in ours and obj2._state.db in ours:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        if db in get_config().replicas:
            return False  # replicas get their schema by replication
        return None
