"""``manage.py create_app_role`` against the real local cluster.

A role of the test's own stands in for the RDS master user: not a superuser, with CREATEROLE and
CREATEDB, owner of a database of the test's own, every statement of its sessions logged
(``log_statement = all``, set on the role by the cluster's superuser) to the primary's log file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgcluster import Cluster
from psycopg.rows import dict_row

from dbrouting.probe import PRIMARY_SQL, REPLICA_SQL, REPLICATION_SQL
from gists.management.commands.create_app_role import RoleRefused, ensure_app_role

from .conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
ADMIN, ADMIN_PASSWORD = "approle_admin", "approle-admin-password-2f1c9e"
ROLE, PASSWORD = "approle_app", "approle-app-password-8d3b51a7e4"
DATABASE = "approle_test"


@pytest.fixture
def admin(cluster: Cluster) -> Iterator[Cluster]:
    """The stand-in master user and its database; both dropped afterwards, with the app's role."""
    drop(cluster)  # what an interrupted run may have left
    primary = cluster.primary
    cluster.psql(primary, f"CREATE ROLE {ADMIN} LOGIN CREATEROLE CREATEDB PASSWORD '{ADMIN_PASSWORD}'")
    cluster.psql(primary, f"ALTER ROLE {ADMIN} SET log_statement = 'all'")
    cluster.psql(primary, f"CREATE DATABASE {DATABASE} OWNER {ADMIN}")
    yield cluster
    drop(cluster)


def drop(cluster: Cluster) -> None:
    cluster.psql(cluster.primary, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    for role in (ROLE, ADMIN):
        cluster.psql(cluster.primary, f"DROP ROLE IF EXISTS {role}")


def connect(cluster: Cluster, user: str, password: str, port: int | None = None) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host="127.0.0.1", port=port or cluster.primary.port, dbname=DATABASE, user=user, password=password,
        autocommit=True, row_factory=dict_row, connect_timeout=5,
    )  # fmt: skip


def make_role(cluster: Cluster, password: str = PASSWORD) -> bool:
    with connect(cluster, ADMIN, ADMIN_PASSWORD) as conn:
        return ensure_app_role(conn, ROLE, password)


def role_state(cluster: Cluster) -> dict[str, Any]:
    """What the server holds of the role: attributes, memberships, its schema's owner."""
    with connect(cluster, ADMIN, ADMIN_PASSWORD) as conn:
        row = conn.execute(
            "SELECT rolcanlogin, rolinherit, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,"
            " array(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
            "       WHERE m.member = r.oid ORDER BY 1) AS member_of,"
            " (SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = r.rolname) AS schema_owner"
            " FROM pg_roles r WHERE rolname = %s",
            [ROLE],
        ).fetchone()
    assert row is not None, f"no role {ROLE}"
    return row


def stored_password(cluster: Cluster) -> str:
    return cluster.psql(cluster.primary, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{ROLE}'")


LEAST_PRIVILEGE = {
    "rolcanlogin": True, "rolinherit": True, "rolsuper": False, "rolcreaterole": False, "rolcreatedb": False,
    "rolreplication": False, "rolbypassrls": False, "member_of": ["pg_read_all_stats"], "schema_owner": ROLE,
}  # fmt: skip


def test_ensure_app_role__makes_a_login_role_with_pg_read_all_stats_only_owning_its_schema(admin: Cluster) -> None:
    assert make_role(admin) is True
    assert role_state(admin) == LEAST_PRIVILEGE
    verifier = stored_password(admin)
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    assert PASSWORD not in verifier


def test_ensure_app_role__sends_the_server_only_the_verifier__never_the_password(admin: Cluster) -> None:
    log = admin.primary.log_file
    start = log.stat().st_size
    make_role(admin)  # CREATE ROLE
    make_role(admin)  # ALTER ROLE
    with log.open(encoding="utf-8", errors="replace") as f:
        f.seek(start)
        written = f.read()
    statements = [line for line in written.splitlines() if f'ROLE "{ROLE}" LOGIN' in line]
    assert len(statements) == 2, written[-2000:]  # both logged: the session's log_statement is in force
    assert all("PASSWORD 'SCRAM-SHA-256$4096:" in line for line in statements)
    assert PASSWORD not in written


def test_ensure_app_role__the_role_runs_the_router_probes_on_the_primary_and_every_replica(admin: Cluster) -> None:
    make_role(admin)
    with connect(admin, ROLE, PASSWORD) as conn:
        primary = conn.execute(PRIMARY_SQL).fetchone()
        standbys = conn.execute(REPLICATION_SQL).fetchall()
    assert primary is not None
    assert (primary["in_recovery"], bool(primary["lsn"])) == (False, True)
    # Without pg_read_all_stats, another role's replication rows show no state and no position.
    assert len(standbys) == len(admin.replicas)
    assert all(s["state"] == "streaming" and s["replay_lag_bytes"] is not None for s in standbys), standbys
    for node in admin.replicas:
        wait_until(lambda port=node.port: probe_replica(admin, port), what=f"{ROLE} connecting to {node.name}")
        replica = probe_replica(admin, node.port)
        assert replica is not None
        assert (replica["in_recovery"], replica["wal_receiver_status"]) == (True, "streaming")
        assert replica["receive_lsn"] is not None
        assert replica["replay_lsn"] is not None
        assert replica["system_identifier"] == primary["system_identifier"]


def probe_replica(cluster: Cluster, port: int) -> dict[str, Any] | None:
    try:  # the role reaches the replica once it has replayed its creation
        with connect(cluster, ROLE, PASSWORD, port) as conn:
            return conn.execute(REPLICA_SQL).fetchone()
    except psycopg.OperationalError:
        return None


def test_ensure_app_role__run_again_changes_nothing_but_keeps_working(admin: Cluster) -> None:
    assert make_role(admin) is True
    with connect(admin, ROLE, PASSWORD) as conn:
        conn.execute("CREATE TABLE kept (id int)")
    assert make_role(admin) is False
    assert role_state(admin) == LEAST_PRIVILEGE
    with connect(admin, ROLE, PASSWORD) as conn:
        row = conn.execute("SELECT schemaname, tableowner FROM pg_tables WHERE tablename = 'kept'").fetchone()
    assert row == {"schemaname": ROLE, "tableowner": ROLE}


def test_ensure_app_role__takes_back_pg_monitor_and_createdb_from_an_older_role(admin: Cluster) -> None:
    admin.psql(admin.primary, f"CREATE ROLE {ROLE} LOGIN CREATEDB IN ROLE pg_monitor, pg_signal_backend")
    assert make_role(admin) is False
    assert role_state(admin) == LEAST_PRIVILEGE


def test_ensure_app_role__refuses_a_superuser_and_changes_nothing(admin: Cluster) -> None:
    admin.psql(admin.primary, f"CREATE ROLE {ROLE} SUPERUSER LOGIN PASSWORD 'the-old-one'")
    before = stored_password(admin)
    with pytest.raises(RoleRefused, match="superuser"):
        make_role(admin)
    assert stored_password(admin) == before
    assert role_state(admin)["schema_owner"] is None


def manage(cluster: Cluster, *args: str, admin_url: str | None, app_password: str = PASSWORD) -> tuple[int, str]:
    """``manage.py`` as an operator runs it, with the app's settings; its return code and output."""
    port = cluster.primary.port
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"postgres://{ROLE}:{app_password}@127.0.0.1:{port}/{DATABASE}",
        "DATABASE_REPLICA_URLS": "",
    }
    env.pop("ADMIN_DATABASE_URL", None)
    if admin_url is not None:
        env["ADMIN_DATABASE_URL"] = admin_url
    proc = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    return proc.returncode, proc.stdout + proc.stderr


def admin_url(cluster: Cluster, password: str = ADMIN_PASSWORD, user: str = ADMIN) -> str:
    return f"postgres://{user}:{password}@127.0.0.1:{cluster.primary.port}/postgres"


def test_command__makes_the_role_the_app_then_migrates_as(admin: Cluster) -> None:
    status, output = manage(admin, "create_app_role", admin_url=admin_url(admin))
    assert (status, output) == (0, f"role {ROLE} created in database {DATABASE}: LOGIN, SCRAM-SHA-256 password, "
                                   f"member of pg_read_all_stats only, owner of schema {ROLE}\n")  # fmt: skip
    status, output = manage(admin, "migrate", "--noinput", admin_url=None)
    assert status == 0, output
    with connect(admin, ROLE, PASSWORD) as conn:
        tables = conn.execute(
            "SELECT tablename, schemaname, tableowner FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    assert {"gists_gist", "dbrouting_policyoverride", "django_migrations"} <= {t["tablename"] for t in tables}
    assert all((t["schemaname"], t["tableowner"]) == (ROLE, ROLE) for t in tables), tables


@pytest.mark.parametrize(
    ("url", "app_password", "expected"),
    [
        (None, PASSWORD, "ADMIN_DATABASE_URL is not set"),
        ("postgres://approle_admin:a-wrong-password@127.0.0.1:{port}/postgres", PASSWORD, "password authentication"),
        ("postgres://approle_admin:x@[::1/postgres", PASSWORD, "ADMIN_DATABASE_URL is not a valid postgres:// URL"),
        (f"postgres://{ROLE}:{PASSWORD}@127.0.0.1:{{port}}/postgres", PASSWORD, "the app needs a role of its own"),
        ("postgres://approle_admin:{admin_password}@127.0.0.1:{port}/postgres", "short", "20 characters or more"),
    ],
)
def test_command__fails_in_one_line_without_a_traceback_or_a_password(
    admin: Cluster, url: str | None, app_password: str, expected: str
) -> None:
    if ROLE in (url or ""):
        make_role(admin)  # the role exists and the admin URL names it
    given = url and url.format(port=admin.primary.port, admin_password=ADMIN_PASSWORD)
    status, output = manage(admin, "create_app_role", admin_url=given, app_password=app_password)
    assert status == 1
    assert output.startswith("CommandError: "), output
    assert output.count("\n") == 1, output
    assert expected in output
    assert not any(secret in output for secret in (PASSWORD, ADMIN_PASSWORD, "a-wrong-password"))
