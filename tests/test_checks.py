"""System checks for misconfiguration, and the settings object."""

from __future__ import annotations

import copy

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from dbrouting.conf import get_config

pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def ids() -> set[str]:
    return {m.id for m in run_checks() if m.id and m.id.startswith("dbrouting.")}


def databases(**changes: dict) -> dict:
    dbs = copy.deepcopy(settings.DATABASES)
    for alias, change in changes.items():
        dbs.setdefault(alias, {}).update(change)
    return dbs


def test_checks__pass_on_the_project_settings() -> None:
    assert ids() == set()


@override_settings(DATABASE_ROUTERS=[])
def test_checks__router_missing() -> None:
    assert "dbrouting.E001" in ids()


@override_settings(DBROUTING={"REPLICAS": ["replica1", "replcia2"]})
def test_checks__replica_alias_typo() -> None:
    messages = [m for m in run_checks() if m.id == "dbrouting.E002"]
    assert len(messages) == 1
    assert "replcia2" in messages[0].msg
    assert "replica2" in messages[0].hint


EXPLICIT = {"REPLICAS": ["replica1", "replica2"]}


def test_checks__replica_not_postgresql() -> None:
    with override_settings(DATABASES=databases(replica2={"ENGINE": "django.db.backends.sqlite3"}), DBROUTING=EXPLICIT):
        assert "dbrouting.E003" in ids()


def test_checks__replica_that_is_the_primary() -> None:
    primary = settings.DATABASES["default"]
    same = {"HOST": primary["HOST"], "PORT": primary["PORT"], "NAME": primary["NAME"]}
    with override_settings(DATABASES=databases(replica1=same)):
        assert "dbrouting.E004" in ids()
    with override_settings(DBROUTING={"REPLICAS": ["default", "replica1"]}):
        assert "dbrouting.E004" in ids()


def test_checks__replica_without_the_failover_engine() -> None:
    with override_settings(
        DATABASES=databases(replica1={"ENGINE": "django.db.backends.postgresql"}), DBROUTING=EXPLICIT
    ):
        assert ids() == {"dbrouting.W001"}


def test_checks__test_settings_that_would_mirror_the_primary() -> None:
    with override_settings(DATABASES=databases(replica1={"TEST": {"MIRROR": "default"}})):
        assert "dbrouting.W002" in ids()
    with override_settings(DATABASES=databases(replica2={"TEST": {"NAME": "test_other"}})):
        assert "dbrouting.W003" in ids()


@override_settings(DBROUTING={"STRATEGY": "dbrouting.strategies.Nope"})
def test_checks__strategy_that_cannot_be_imported() -> None:
    assert "dbrouting.E006" in ids()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"MAX_STALENESS_SECONDS": -1}, "MAX_STALENESS_SECONDS"),
        ({"CHECK_INTERVAL_SECONDS": "fast"}, "CHECK_INTERVAL_SECONDS"),
        ({"REPLICAS": "replica1"}, "REPLICAS"),
        ({"MAX_STALENESS": 5}, "unknown keys: MAX_STALENESS"),
        ({"ALL_BEHIND_POLICY": "stale"}, "ALL_BEHIND_POLICY'] must be one of 'primary', 'least_lagged', 'budget'"),
        (
            {"MAX_STALENESS_SECONDS": 10, "MAX_STALENESS_HARD_SECONDS": 5},
            r"MAX_STALENESS_HARD_SECONDS'\] must be a number >= 10",
        ),
        ({"PRIMARY_READ_BUDGET": -1}, "PRIMARY_READ_BUDGET"),
        ({"MAX_STALENESS_HARD_SECONDS": "1m"}, "MAX_STALENESS_HARD_SECONDS"),
        ({"LAG_HISTORY_SECONDS": -1}, r"LAG_HISTORY_SECONDS'\] must be a number >= 0"),
        ({"LAG_HISTORY_SECONDS": None}, "LAG_HISTORY_SECONDS"),
        ({"METRICS_TOKEN": "short-secret"}, r"METRICS_TOKEN'\] must be None or a random string of at least 32"),
    ],
)
def test_config__rejects_bad_values_clearly(value: dict, message: str) -> None:
    with override_settings(DBROUTING=value):
        with pytest.raises(ImproperlyConfigured, match=message):
            get_config()
        assert "dbrouting.E007" in ids()


def test_config__the_metrics_token_is_never_shown() -> None:
    token = "s3cret-" * 6
    with override_settings(DBROUTING={"METRICS_TOKEN": token}):
        assert get_config().metrics_token == token
        assert token not in repr(get_config())
    with override_settings(DBROUTING={"METRICS_TOKEN": "s3cret"}), pytest.raises(ImproperlyConfigured) as refused:
        get_config()
    assert "s3cret" not in str(refused.value)


def test_config__default_replicas_are_the_aliases_on_dbrouting_engines() -> None:
    extra = {"analytics": {**settings.DATABASES["default"], "ENGINE": "django.db.backends.postgresql"}}
    with override_settings(DATABASES={**settings.DATABASES, **extra}):
        assert get_config().replicas == ("replica1", "replica2")


@pytest.mark.parametrize("value", [{"REPLICAS": 5}, {"PRIMARY": ["default"]}, {"MAX_STALENESS_SECONDS": float("nan")}])
def test_config__odd_types_are_configuration_errors_not_crashes(value: dict) -> None:
    with override_settings(DBROUTING=value):
        assert "dbrouting.E007" in ids()


@override_settings(DBROUTING={"STRATEGY": "dbrouting.strategies.Strategy"})
def test_checks__strategy_that_cannot_be_built() -> None:
    assert "dbrouting.E006" in ids()


def test_config__defaults_and_override_settings() -> None:
    config = get_config()
    assert config.replicas == ("replica1", "replica2")
    assert config.primary == "default"
    with override_settings(DBROUTING={"MAX_STALENESS_SECONDS": 30}):
        assert get_config().max_staleness_seconds == 30.0
        assert get_config().check_interval_seconds == 0.5
        assert get_config().lag_history_seconds == 600.0  # ten minutes
    assert get_config().check_interval_seconds == 0.2  # the test settings again


def test_checks__replica_with_atomic_requests_or_autocommit_off() -> None:
    with override_settings(DATABASES=databases(replica1={"ATOMIC_REQUESTS": True})):
        assert "dbrouting.E008" in ids()
    with override_settings(DATABASES=databases(replica2={"AUTOCOMMIT": False})):
        assert "dbrouting.E008" in ids()


def test_checks__migrate_command_of_another_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core import management

    commands = {**management.get_commands(), "migrate": "django.core"}  # Django's own won
    monkeypatch.setattr(management, "get_commands", lambda: commands)
    assert ids() == {"dbrouting.W004"}


def test_serious__lists_errors_for_replica_status_not_warnings() -> None:
    from dbrouting.checks import serious

    assert serious() == []
    with override_settings(DATABASE_ROUTERS=[]):
        assert [line.split(":")[0] for line in serious()] == ["dbrouting.E001"]


def test_config__the_hard_ceiling_follows_a_larger_tolerance_unless_set() -> None:
    with override_settings(DBROUTING={"MAX_STALENESS_SECONDS": 120}):
        assert get_config().max_staleness_hard_seconds == 120.0
    with override_settings(DBROUTING={}):
        assert get_config().max_staleness_hard_seconds == 60.0
    with override_settings(DBROUTING={"MAX_STALENESS_SECONDS": 1, "MAX_STALENESS_HARD_SECONDS": 30}):
        assert get_config().max_staleness_hard_seconds == 30.0
