"""The URLs terraform/outputs.tf gives the app parse into the TLS options libpq verifies with.

The URL is built from the Terraform source itself (the ``url_query`` local and the default of
``ca_bundle_path``), so that a change there that django-environ would misread fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import environ
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from config.databases import databases_from_env

TERRAFORM = Path(__file__).resolve().parent.parent / "terraform"
BUNDLE = "/etc/ssl/certs/rds-global-bundle.pem"
VERIFY_FULL = {"sslmode": "verify-full", "sslrootcert": BUNDLE}


def output_url(host: str) -> str:
    """A URL of the database_url / database_replica_urls outputs, with the default bundle path."""
    query = re.search(r'^\s*url_query\s*=\s*"([^"]+)"', (TERRAFORM / "outputs.tf").read_text(), re.MULTILINE)
    default = re.search(
        r'variable "ca_bundle_path" \{.*?^\s*default\s*=\s*"([^"]+)"', (TERRAFORM / "variables.tf").read_text(),
        re.MULTILINE | re.DOTALL,
    )  # fmt: skip
    assert query is not None, "no url_query local in terraform/outputs.tf"
    assert default is not None, "no default for ca_bundle_path in terraform/variables.tf"
    return f"postgres://{host}:5432/gists?" + query[1].replace("${var.ca_bundle_path}", default[1])


def test_output_url__has_the_default_bundle_path() -> None:
    assert output_url("db.example").endswith(f"?sslmode=verify-full&sslrootcert={BUNDLE}")


def test_output_url__django_environ_puts_sslmode_and_sslrootcert_in_options() -> None:
    config = environ.Env.db_url_config(output_url("gists-primary.abc.eu-west-1.rds.amazonaws.com"))
    assert config["OPTIONS"] == VERIFY_FULL
    assert (config["HOST"], config["PORT"], config["NAME"]) == (
        "gists-primary.abc.eu-west-1.rds.amazonaws.com",
        5432,
        "gists",
    )


def test_output_urls__reach_every_alias_as_libpq_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", output_url("gists-primary.abc.eu-west-1.rds.amazonaws.com"))
    replicas = [output_url(f"gists-replica{i}.abc.eu-west-1.rds.amazonaws.com") for i in (1, 2)]
    monkeypatch.setenv("DATABASE_REPLICA_URLS", ",".join(replicas))
    databases = databases_from_env(environ.Env(), default_url=None, default_replica_urls=None)
    assert list(databases) == ["default", "replica1", "replica2"]
    for alias, database in databases.items():
        options = database["OPTIONS"]
        assert {k: options[k] for k in VERIFY_FULL} == VERIFY_FULL, alias
        # Every option is a libpq keyword: make_conninfo refuses any other.
        assert VERIFY_FULL.items() <= conninfo_to_dict(make_conninfo(**options)).items()
