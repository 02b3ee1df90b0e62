"""System checks for a misconfigured router (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

ROUTER = "dbrouting.router.PrimaryReplicaRouter"
BACKEND = "dbrouting.backends.postgresql"
BACKENDS = (BACKEND, "dbrouting.backends.postgresql_prometheus")


def _router_installed() -> bool:
    from .router import PrimaryReplicaRouter

    for entry in settings.DATABASE_ROUTERS:
        try:
            cls = import_string(entry) if isinstance(entry, str) else type(entry)
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, PrimaryReplicaRouter):
            return True
    return False


def _same_server(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def key(db: dict[str, Any]) -> tuple[str, str, str]:
        return (str(db.get("HOST") or "localhost"), str(db.get("PORT") or "5432"), str(db.get("NAME")))

    return key(a) == key(b)


@register(Tags.database, deploy=False)
def check_routing(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from .conf import get_config

    try:
        config = get_config()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="See the DBROUTING settings table in the README.", id="dbrouting.E007")]
    errors: list[Any] = []
    databases = settings.DATABASES
    if config.primary not in databases:
        errors.append(
            Error(
                f"DBROUTING['PRIMARY'] is {config.primary!r}, which is not in DATABASES.",
                hint="Name the alias that takes writes, usually 'default'.",
                id="dbrouting.E005",
            )
        )
        return errors
    if config.replicas and not _router_installed():
        errors.append(
            Error(
                f"Replicas are configured but {ROUTER} is not in DATABASE_ROUTERS.",
                hint=f'Add DATABASE_ROUTERS = ["{ROUTER}"].',
                id="dbrouting.E001",
            )
        )
    primary = databases[config.primary]
    primary_test = (primary.get("TEST") or {}).get("NAME") or f"test_{primary.get('NAME')}"
    for alias in config.replicas:
        if alias not in databases:
            errors.append(
                Error(
                    f"DBROUTING['REPLICAS'] names {alias!r}, which is not in DATABASES.",
                    hint=f"Known aliases: {', '.join(databases)}.",
                    id="dbrouting.E002",
                )
            )
            continue
        db = databases[alias]
        if "postgresql" not in str(db.get("ENGINE", "")):
            errors.append(
                Error(
                    f"Replica {alias!r} does not use a PostgreSQL engine.",
                    hint=f"Set its ENGINE to {BACKEND!r}.",
                    id="dbrouting.E003",
                )
            )
            continue
        if alias == config.primary or _same_server(db, primary):
            errors.append(
                Error(
                    f"Replica {alias!r} points at the primary's server and database.",
                    hint="Give it the replica's host or port, or remove it from REPLICAS.",
                    id="dbrouting.E004",
                )
            )
        if db.get("ENGINE") not in BACKENDS:
            errors.append(
                Warning(
                    f"Replica {alias!r} uses {db.get('ENGINE')!r}: a failing replica will "
                    "raise errors instead of falling back to another node.",
                    hint=f"Set its ENGINE to {BACKEND!r}.",
                    id="dbrouting.W001",
                )
            )
        test = db.get("TEST") or {}
        if test.get("MIRROR"):
            errors.append(
                Warning(
                    f"Replica {alias!r} has TEST['MIRROR']: tests would read the primary through "
                    "it and never exercise replication.",
                    hint="Remove MIRROR; point TEST['NAME'] at the primary's test database.",
                    id="dbrouting.W002",
                )
            )
        elif (test.get("NAME") or f"test_{db.get('NAME')}") != primary_test:
            errors.append(
                Warning(
                    f"Replica {alias!r} would read test database "
                    f"{test.get('NAME') or 'test_' + str(db.get('NAME'))!r}, not the primary's "
                    f"{primary_test!r}, which replication brings to it.",
                    hint=f"Set DATABASES[{alias!r}]['TEST'] = {{'NAME': {primary_test!r}}}.",
                    id="dbrouting.W003",
                )
            )
    try:
        import_string(config.strategy)()
    except Exception as exc:  # ImportError, or a class that cannot be built without arguments
        errors.append(
            Error(
                f"DBROUTING['STRATEGY'] {config.strategy!r} cannot be imported ({exc}).",
                hint="Use dbrouting.strategies.RoundRobin, Random or LeastLag, or your own class.",
                id="dbrouting.E006",
            )
        )
    return errors
