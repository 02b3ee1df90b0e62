"""Build ``DATABASES`` from ``DATABASE_URL`` and ``DATABASE_REPLICA_URLS``.

Parsing is django-environ's; this module adds the checks it leaves out (a PostgreSQL scheme,
a host, a database name, a numeric port) and error messages that name the variable and never
echo a password.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}
# django-prometheus' engine counts queries, errors and connections per alias.
ENGINE = "django_prometheus.db.backends.postgresql"
# Replicas also fall back to another node when their connection fails (dbrouting/backends/).
REPLICA_ENGINE = "dbrouting.backends.postgresql_prometheus"


# A query parameter whose name holds "password" (libpq's password, sslpassword), up to the next one.
_QUERY_PASSWORD = re.compile(r"((?:^|[?&;])[^=?&;#]*password=)[^&;#]*", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL with anything that may be a password replaced by ``***``, for messages and logs:
    the userinfo's, and a ``?password=`` (or ``sslpassword=``) parameter's.

    Errs on the side of hiding: a fragment of a URL split at an unescaped comma in a password
    (``postgres://app:s3cr`` then ``et@host/db``) shows no part of that password.
    """
    return _QUERY_PASSWORD.sub(r"\1***", _redact_userinfo(url))


def _redact_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        # No scheme: whatever precedes an '@' could be credentials.
        return f"***@{url.rpartition('@')[2]}" if "@" in url else url
    if "@" in rest:
        # The last '@' ends the credentials even when a password holds an unescaped '@'.
        userinfo, _, host_part = rest.rpartition("@")
        user = userinfo.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host_part}" if ":" in userinfo else f"{scheme}://{user}@{host_part}"
    netloc, slash, path = rest.partition("/")
    name, colon, port = netloc.rpartition(":")
    if colon and not port.isdigit():  # "user:pass" cut short, not "host:port"
        return f"{scheme}://{name}:***{slash}{path}"
    return url


def parse_database_url(variable: str, url: str) -> dict[str, Any]:
    """One Django database dict from a PostgreSQL URL, or ImproperlyConfigured saying why."""

    def fail(reason: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(
            f"{variable} is not a valid PostgreSQL URL ({reason}): {redact(url)} (percent-encode , @ : / in passwords)"
        )

    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port  # urllib raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        reason = "bad port" if "port" in str(exc).lower() else "malformed"
        raise fail(reason) from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise fail("the scheme must be postgres://")
    if not parts.hostname:
        raise fail("no host")
    if not parts.path.strip("/"):
        raise fail("no database name")
    config = environ.Env.db_url_config(url, engine=ENGINE)
    if port is not None:
        config["PORT"] = port
    return config


def env_number(env: environ.Env, name: str, default: float | None, cast: type[int] | type[float] = int) -> Any:
    """A numeric variable, or ImproperlyConfigured naming it (django-environ would raise ValueError)."""
    raw = env.str(name, default="")
    if raw.strip() == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise ImproperlyConfigured(f"{name} must be {kind}, not {raw!r}") from None


def databases_from_env(
    env: environ.Env,
    *,
    default_url: str | None,
    default_replica_urls: str | None,
) -> dict[str, dict[str, Any]]:
    """``default`` from DATABASE_URL, ``replica1``… from DATABASE_REPLICA_URLS, in order.

    Passing ``None`` as a default makes the variable required (production).
    """
    primary_url = env.str("DATABASE_URL", default=default_url)
    if not primary_url:
        raise ImproperlyConfigured("DATABASE_URL is required: set it to the primary's postgres:// URL")
    replica_urls = env.str("DATABASE_REPLICA_URLS", default=default_replica_urls or "")

    common = {
        # Persistent connections with a health check on reuse: see README, "Connections".
        "CONN_MAX_AGE": env_number(env, "DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
    }
    connect_timeout = env_number(env, "DB_CONNECT_TIMEOUT", 3)

    def build(variable: str, url: str, alias: str) -> dict[str, Any]:
        config = parse_database_url(variable, url)
        config.update(common)
        options = config.setdefault("OPTIONS", {})
        options.setdefault("connect_timeout", connect_timeout)
        options.setdefault("application_name", f"gists:{alias}")
        return config

    databases = {"default": build("DATABASE_URL", primary_url, "default")}
    # dbrouting's engine on the primary too: its sockets can be cut, and it is not connected to
    # while hung (a write fails at once instead of waiting out the connect timeout).
    databases["default"]["ENGINE"] = REPLICA_ENGINE
    test_name = f"test_{databases['default']['NAME']}"
    databases["default"]["TEST"] = {"NAME": test_name}
    entries = [u.strip() for u in replica_urls.split(",") if u.strip()]
    for index, url in enumerate(entries, start=1):
        alias = f"replica{index}"
        databases[alias] = build(f"DATABASE_REPLICA_URLS (entry {index})", url, alias)
        databases[alias]["ENGINE"] = REPLICA_ENGINE
        # Tests create the database on the primary only; replication brings it to the replicas,
        # which read it under the same name (see tests/conftest.py).
        databases[alias]["TEST"] = {"NAME": test_name}
    return databases


def replica_aliases(databases: dict[str, dict[str, Any]]) -> list[str]:
    return [alias for alias in databases if alias != "default"]
