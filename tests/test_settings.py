"""Settings from the environment: database URLs, replica aliases, production refusals."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import environ
import pytest
from django.core.exceptions import ImproperlyConfigured

from config.databases import databases_from_env, parse_database_url, redact

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-P4ss"


def build(monkeypatch: pytest.MonkeyPatch, primary: str | None, replicas: str | None) -> dict:
    for name, value in (("DATABASE_URL", primary), ("DATABASE_REPLICA_URLS", replicas)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return databases_from_env(environ.Env(), default_url=None, default_replica_urls=None)


def test_urls__become_default_and_replica_aliases_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    dbs = build(
        monkeypatch,
        f"postgres://app:{SECRET}@primary.internal:5432/gists",
        "postgres://app:x@r1.internal:5433/gists, ,postgresql://app:y@r2.internal/gists,",
    )
    assert list(dbs) == ["default", "replica1", "replica2"]
    assert dbs["default"]["HOST"] == "primary.internal"
    assert dbs["default"]["PASSWORD"] == SECRET
    assert dbs["replica1"]["PORT"] == 5433
    assert dbs["replica2"]["HOST"] == "r2.internal"
    assert dbs["default"]["ENGINE"] == "dbrouting.backends.postgresql_prometheus"  # cut when hung
    assert dbs["replica1"]["ENGINE"] == dbs["replica2"]["ENGINE"] == "dbrouting.backends.postgresql_prometheus"
    assert dbs["replica1"]["TEST"] == {"NAME": "test_gists"}
    assert dbs["replica2"]["OPTIONS"]["application_name"] == "gists:replica2"
    assert dbs["default"]["CONN_HEALTH_CHECKS"] is True


def test_no_replicas__is_a_single_node(monkeypatch: pytest.MonkeyPatch) -> None:
    assert list(build(monkeypatch, "postgres://a:b@h/d", None)) == ["default"]


def test_missing_primary_url__is_required_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL is required"):
        build(monkeypatch, None, None)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"mysql://u:{SECRET}@h/db", "scheme"),
        (f"postgres://u:{SECRET}@h:notaport/db", "bad port"),
        (f"postgres://u:{SECRET}@h:99999/db", "bad port"),
        (f"postgres://u:{SECRET}@/db", "no host"),
        (f"postgres://u:{SECRET}@h:5432", "no database"),
        (f"postgres://u:{SECRET}@h:5432/", "no database"),
        ("not a url at all", "scheme"),
        (f"postgres://u:{SECRET}@[::1/db", "malformed"),
    ],
)
def test_malformed_url__names_the_variable_and_hides_the_password(url: str, reason: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        parse_database_url("DATABASE_REPLICA_URLS (entry 2)", url)
    message = str(caught.value)
    assert message.startswith("DATABASE_REPLICA_URLS (entry 2) is not a valid PostgreSQL URL")
    assert reason in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
        ("postgres://u:p@ss:w@rd@h:5/db", "postgres://u:***@h:5/db"),
        ("postgres://u@h/db", "postgres://u@h/db"),
        ("postgres://h/db", "postgres://h/db"),
    ],
)
def test_redact__hides_passwords_even_with_at_signs(url: str, expected: str) -> None:
    assert redact(url) == expected


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SECRET_KEY", "DJANGO_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_manage__malformed_url_fails_in_one_line_without_password_or_traceback() -> None:
    proc = run_manage({"DATABASE_REPLICA_URLS": f"postgres://u:{SECRET}@h:bad/db"}, "check")
    assert proc.returncode == 2
    assert "DATABASE_REPLICA_URLS (entry 1) is not a valid PostgreSQL URL" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_production__refuses_to_start_without_a_real_secret_key() -> None:
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.production", "DATABASE_URL": "postgres://u:p@h/db"}
    proc = run_manage(env, "check")
    assert proc.returncode == 2
    assert "SECRET_KEY" in proc.stderr
    weak = run_manage({**env, "SECRET_KEY": "django-insecure-" + "x" * 60}, "check")
    assert weak.returncode == 2


def test_production__refuses_to_start_without_database_url() -> None:
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "a.example",
    }
    proc = run_manage(env, "check")
    assert proc.returncode == 2
    assert "DATABASE_URL is required" in proc.stderr


def test_production__refuses_to_start_without_allowed_hosts() -> None:
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": "postgres://h/db",
    }
    proc = run_manage(env, "check")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "configuration error: ALLOWED_HOSTS is required in production: the site's host names, comma-separated"
    )


PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "postgres://u:p@h/db",
    "ALLOWED_HOSTS": "gists.example.com",
    "CACHE_URL": "redis://127.0.0.1:6379/0",  # not connected to by the checks
}


def test_production__check_deploy_has_no_warning_with_the_documented_variables() -> None:
    proc = run_manage(PRODUCTION, "check", "--deploy", "--fail-level", "WARNING")
    assert proc.returncode == 0, proc.stderr
    assert "no issues" in proc.stdout


def test_production__per_process_rate_limits_are_a_deploy_warning() -> None:
    proc = run_manage({**PRODUCTION, "CACHE_URL": "locmemcache://"}, "check", "--deploy")
    assert "gists.W001" in proc.stderr


def test_production__proxy_headers_are_trusted_only_behind_a_declared_proxy() -> None:
    show = "from django.conf import settings as s; print(getattr(s, 'SECURE_PROXY_SSL_HEADER', None))"
    direct = run_manage(PRODUCTION, "shell", "-c", show)
    assert direct.stdout.splitlines()[-1] == "None", direct.stderr
    proxied = run_manage({**PRODUCTION, "TRUSTED_PROXY_COUNT": "1"}, "shell", "-c", show)
    assert proxied.stdout.splitlines()[-1] == "('HTTP_X_FORWARDED_PROTO', 'https')", proxied.stderr


def test_gunicorn__defaults_to_production_and_stops_when_unconfigured() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE" and not k.startswith("SECRET")}
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "config/gunicorn.conf.py",
        "--bind",
        "127.0.0.1:0",
        "config.wsgi",
    ]
    # A worker that exits with any other code than 4 is started again, and again: no timeout here.
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    [line] = [line for line in proc.stderr.splitlines() if "error" in line]  # once, in gunicorn's master
    assert line.startswith("configuration error: SECRET_KEY must be set")
    assert "Traceback" not in proc.stderr
    assert "Booting worker" not in proc.stderr


def test_asgi__defaults_to_production_and_refuses_to_start_unconfigured() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE" and not k.startswith("SECRET")}
    proc = subprocess.run(
        [sys.executable, "-c", "import config.asgi"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 4
    assert proc.stderr.startswith("configuration error: SECRET_KEY must be set")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("name", "value"), [("DB_CONN_MAX_AGE", "soon"), ("DBROUTING_MAX_STALENESS_SECONDS", "1.5s")])
def test_manage__bad_number_is_one_line_naming_the_variable(name: str, value: str) -> None:
    proc = run_manage({name: value}, "check")
    assert proc.returncode == 2
    kind = "an integer" if name.startswith("DB_") else "a number"
    assert proc.stderr.strip() == f"configuration error: {name} must be {kind}, not {value!r}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgres://u@h/db?password=s3cret&sslmode=require", "postgres://u@h/db?password=***&sslmode=require"),
        (
            "postgres://h/db?sslmode=verify-full&sslpassword=s3cret",
            "postgres://h/db?sslmode=verify-full&sslpassword=***",
        ),
        ("postgres://u:s3cret@h/db?PASSWORD=s3cret", "postgres://u:***@h/db?PASSWORD=***"),
    ],
)
def test_redact__a_password_in_a_query_parameter_is_hidden(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_manage__a_password_in_a_query_parameter_is_never_printed() -> None:
    proc = run_manage({"DATABASE_REPLICA_URLS": f"postgres://h:bad/db?password={SECRET}"}, "check")
    assert proc.returncode == 2
    assert "?password=***" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout


def test_production__metrics_scraped_directly_over_http_with_the_token_and_nothing_else_is() -> None:
    token = secrets.token_urlsafe(32)
    code = (
        "from django.test import Client\n"
        "c = Client(HTTP_HOST='gists.example.com')\n"
        f"print(c.get('/metrics', HTTP_AUTHORIZATION='Bearer {token}').status_code,"
        " c.get('/metrics').status_code, c.get('/gists/').status_code)"
    )
    proc = run_manage({**PRODUCTION, "METRICS_TOKEN": token}, "shell", "-c", code)
    # /metrics: 200 over plain HTTP with the token, 404 without; every page else: redirected to HTTPS.
    assert proc.stdout.splitlines()[-1] == "200 404 301", proc.stderr


def test_production__refuses_a_negative_proxy_count() -> None:
    proc = run_manage({**PRODUCTION, "TRUSTED_PROXY_COUNT": "-1"}, "check")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "configuration error: TRUSTED_PROXY_COUNT must be 0 or more, not -1"
