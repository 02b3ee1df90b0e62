"""System checks for a misconfigured router (``manage.py check``), one registered function per id.

Each check but the settings' own (E006/E007) says nothing while ``DBROUTING`` itself is invalid.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import Config, get_config
from .exceptions import SettingError
from .plane import own_directory, where

ROUTER = "dbrouting.router.PrimaryReplicaRouter"
BACKEND = "dbrouting.backends.postgresql"
BACKENDS = (BACKEND, "dbrouting.backends.postgresql_prometheus")


def _config() -> Config | None:
    try:
        return get_config()
    except ImproperlyConfigured:
        return None


def _replicas(postgresql_only: bool = True) -> Iterator[tuple[str, dict[str, Any] | None, Config]]:
    """(alias, its DATABASES entry or None, config) of each replica (on PostgreSQL, by default)."""
    config = _config()
    if config is None or config.primary not in settings.DATABASES:
        return
    for alias in config.replicas:
        db = settings.DATABASES.get(alias)
        if not postgresql_only or (db is not None and "postgresql" in str(db.get("ENGINE", ""))):
            yield alias, db, config


@register(Tags.database)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """dbrouting.E006 (a strategy or token store that cannot be built), dbrouting.E007 (the rest)."""
    try:
        get_config()
    except ImproperlyConfigured as exc:
        check_id = getattr(exc, "check_id", "dbrouting.E007")
        return [Error(str(exc), hint="See the DBROUTING settings table in the README.", id=check_id)]
    return []


@register(Tags.database)
def check_primary(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    config = _config()
    if config is None or config.primary in settings.DATABASES:
        return []
    message = f"DBROUTING['PRIMARY'] is {config.primary!r}, which is not in DATABASES."
    return [Error(message, hint="Name the alias that takes writes, usually 'default'.", id="dbrouting.E005")]


@register(Tags.database)
def check_router(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    config = _config()
    if config is None or not config.replicas:
        return []
    for entry in settings.DATABASE_ROUTERS:
        try:
            cls = import_string(entry) if isinstance(entry, str) else type(entry)
        except ImportError:
            continue
        if any(f"{c.__module__}.{c.__qualname__}" == ROUTER for c in getattr(cls, "__mro__", ())):
            return []  # ours, or a subclass of it
    message = f"Replicas are configured but {ROUTER} is not in DATABASE_ROUTERS."
    return [Error(message, hint=f'Add DATABASE_ROUTERS = ["{ROUTER}"].', id="dbrouting.E001")]


@register(Tags.database)
def check_replica_aliases(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(f"DBROUTING['REPLICAS'] names {alias!r}, which is not in DATABASES.",
              hint=f"Known aliases: {', '.join(settings.DATABASES)}.", id="dbrouting.E002")
        for alias, db, _ in _replicas(postgresql_only=False) if db is None
    ]  # fmt: skip


@register(Tags.database)
def check_replica_engines(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(f"Replica {alias!r} does not use a PostgreSQL engine.", hint=f"Set its ENGINE to {BACKEND!r}.",
              id="dbrouting.E003")
        for alias, db, _ in _replicas(postgresql_only=False)
        if db is not None and "postgresql" not in str(db.get("ENGINE", ""))
    ]  # fmt: skip


def _server(db: dict[str, Any]) -> tuple[str, str, str]:
    return (str(db.get("HOST") or "localhost"), str(db.get("PORT") or "5432"), str(db.get("NAME")))


@register(Tags.database)
def check_replica_is_not_primary(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(f"Replica {alias!r} points at the primary's server and database.",
              hint="Give it the replica's host or port, or remove it from REPLICAS.", id="dbrouting.E004")
        for alias, db, config in _replicas()
        if alias == config.primary or _server(db or {}) == _server(settings.DATABASES[config.primary])
    ]  # fmt: skip


@register(Tags.database)
def check_failover_engine(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Warning(f"Replica {alias!r} uses {(db or {}).get('ENGINE')!r}: a failing replica will raise errors "
                "instead of falling back to another node.", hint=f"Set its ENGINE to {BACKEND!r}.",
                id="dbrouting.W001")
        for alias, db, _ in _replicas() if (db or {}).get("ENGINE") not in BACKENDS
    ]  # fmt: skip


@register(Tags.database)
def check_test_mirror(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Warning(f"Replica {alias!r} has TEST['MIRROR']: tests would read the primary through it and never "
                "exercise replication.", hint="Remove MIRROR; point TEST['NAME'] at the primary's test database.",
                id="dbrouting.W002")
        for alias, db, _ in _replicas() if ((db or {}).get("TEST") or {}).get("MIRROR")
    ]  # fmt: skip


def _test_name(db: dict[str, Any]) -> str:
    return str((db.get("TEST") or {}).get("NAME") or f"test_{db.get('NAME')}")


@register(Tags.database)
def check_test_database(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    config = _config()
    want = _test_name(settings.DATABASES[config.primary]) if config and config.primary in settings.DATABASES else ""
    return [
        Warning(f"Replica {alias!r} would read test database {_test_name(db)!r}, not the primary's {want!r}, "
                "which replication brings to it.", hint=f"Set DATABASES[{alias!r}]['TEST'] = {{'NAME': {want!r}}}.",
                id="dbrouting.W003")
        for alias, db, _ in _replicas()
        if db is not None and not (db.get("TEST") or {}).get("MIRROR") and _test_name(db) != want
    ]  # fmt: skip


@register(Tags.database)
def check_replica_transactions(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(f"Replica {alias!r} has ATOMIC_REQUESTS or AUTOCOMMIT off: every request would open a transaction "
              "on it (connecting before any read, never failing over).",
              hint=f"Leave DATABASES[{alias!r}]['ATOMIC_REQUESTS'] False and AUTOCOMMIT True (the default).",
              id="dbrouting.E008")
        for alias, db, _ in _replicas()
        if db is not None and (db.get("ATOMIC_REQUESTS") or db.get("AUTOCOMMIT") is False)
    ]  # fmt: skip


@register(Tags.database)
def check_migrate_command(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from django.core.management import get_commands

    if _config() is None or get_commands().get("migrate") == "dbrouting":
        return []
    return [
        Warning(f"manage.py migrate is {get_commands().get('migrate')}'s, not dbrouting's: reads made by "
                "migrations may go to replicas that lack the new schema.",
                hint="List 'dbrouting' before that app in INSTALLED_APPS, or wrap its migrate in use_primary().",
                id="dbrouting.W004")
    ]  # fmt: skip


def serious() -> list[str]:
    """Every dbrouting error, one line each (``replica_status`` reports them with exit code 2)."""
    messages = run_checks(tags=[Tags.database])
    return [f"{m.id}: {m.msg}" for m in messages if (m.id or "").startswith("dbrouting.") and m.is_serious()]


@register(Tags.database)
def check_runtime_dir(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    config = _config()
    if config is None or not {config.primary, *config.replicas} <= set(settings.DATABASES):
        return []  # (other checks say so)
    try:
        place = where(config)
        if place is not None:
            own_directory(place[0])  # (not made here: a check has no side effect)
    except SettingError as exc:
        hint = "Every process of the host probes on its own meanwhile; set DBROUTING['RUNTIME_DIR'] to such a folder."
        return [Warning(str(exc), hint=hint, id=exc.check_id)]
    return []
