"""``manage.py replica_policy`` and the operator's override on its way to every prober: a row on
the primary, read with the primary's probe, and never a reason to find the primary down."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from dbrouting import probe
from dbrouting.health import cache
from dbrouting.models import PolicyOverride

from .conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("warm_health", "override_cleared")


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("replica_policy", *args, stdout=out)
    return out.getvalue()


def test_show_set_replace_and_clear() -> None:
    assert run() == "no override: ALL_BEHIND_POLICY 'primary' (the setting) is in force\n"
    out = run("least_lagged", "--minutes", "30", "--reason", "backfill")
    assert out.startswith("operator's override in force: least_lagged until 20"), out
    assert "backfill" in out
    assert out.endswith("the setting is 'primary'\n")
    run("budget")  # replaces it: one override at a time
    [only] = PolicyOverride.objects.using("default").all()
    assert (only.policy, only.expires_at) == ("budget", None)
    assert "until removed" in run()
    assert run("--clear").startswith("no override")
    assert not PolicyOverride.objects.using("default").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("primary", "--clear"), "not both"),
        (("--minutes", "5"), "--minutes needs a policy"),
        (("primary", "--minutes", "0"), "--minutes needs a policy"),
        (("primary", "--minutes", "nan"), "--minutes needs a policy"),
        (("primary", "--minutes", "inf"), "--minutes needs a policy"),
        (("--reason", "why"), "--reason needs a policy"),
        (("primary", "--reason", "x" * 201), "--reason is at most 200 characters, not 201"),
    ],
)
def test_refuses_bad_input(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not PolicyOverride.objects.using("default").exists()


def test_primary_unreachable__one_line_no_traceback_no_password() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "PGCLUSTER_PORT_BASE": "1"}
    proc = subprocess.run([sys.executable, "manage.py", "replica_policy", "least_lagged"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("CommandError: the primary cannot be reached"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "gists-dev-password" not in proc.stderr + proc.stdout


def test_probe__an_expired_override_is_not_in_force() -> None:
    PolicyOverride.objects.using("default").create(policy="least_lagged", expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    assert cache.wait_for_rounds(2)
    assert cache.snapshot().override() is None
    assert PolicyOverride.current() is None


def test_probe__a_locked_table_leaves_the_primary_up_and_the_last_override_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dbrouting")
    run("least_lagged")
    wait_until(lambda: cache.snapshot().override() == "least_lagged", what="the override probed")
    sessions = (
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'dbrouting-probe' AND datname = current_database()"
    )
    ours = {**probe.connection_params("default", 2), "application_name": "test-locker"}
    with psycopg.connect(**ours) as conn:  # a transaction, as DDL takes
        before = {pid for (pid,) in conn.execute(sessions).fetchall()}
        conn.execute(f"LOCK TABLE {PolicyOverride._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        wait_until(
            lambda: getattr(cache.snapshot().last_good, "policy_error", None) is not None, what="a probe met the lock"
        )
        assert cache.wait_for_rounds(3)
        snapshot = cache.snapshot()
        assert snapshot.primary_up  # the primary answered its probe: only the override was out of reach
        assert "lock" in (snapshot.primary.policy_error or "")  # type: ignore[union-attr]
        assert snapshot.override() == "least_lagged"  # the last one read holds
        assert not snapshot.primary.timed_out  # type: ignore[union-attr]
        with psycopg.connect(autocommit=True, **ours) as other:
            during = {pid for (pid,) in other.execute(sessions).fetchall()}
        assert during == before  # the probe's connection is kept: no new session a round
    wait_until(lambda: cache.snapshot().primary.policy_error is None, what="read again")  # type: ignore[union-attr]
    assert caplog.text.count("override is unreadable") == 1
    assert connections["default"].settings_dict["PASSWORD"] not in caplog.text
