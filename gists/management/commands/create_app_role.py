"""``manage.py create_app_role``: the database role the app runs as, made by the master user.

The app connects as the role of its ``default`` database (``DATABASE_URL``'s user and password, or
libpq's ``PGUSER`` and ``PGPASSWORD``); this command, given the master user's URL in
``ADMIN_DATABASE_URL``, makes that role what the app needs and no more, in one transaction:

- ``LOGIN``, no ``CREATEDB`` nor ``CREATEROLE`` (and it refuses a superuser, replication or
  ``BYPASSRLS`` role, which only a superuser could change);
- a member of ``pg_read_all_stats`` alone: the router reads ``pg_stat_replication`` and
  ``pg_stat_wal_receiver`` (``pg_monitor`` and every other membership are revoked);
- the owner of the schema named after it, where its migrations create the tables (``"$user"``
  comes first in the default ``search_path``), in the app's database;
- ``cube`` and ``earthdistance``, which the migrations need and only the master user may create.

The password never reaches the server in clear: libpq computes its SCRAM-SHA-256 verifier here
(``PQencryptPasswordConn``), and the statement, which ``log_statement = ddl`` writes to the logs,
carries only the verifier. Run again, it changes nothing but the verifier's salt: it also sets a
rotated password. Nothing it prints holds a password.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row

from dbrouting.probe import describe

ADMIN_URL = "ADMIN_DATABASE_URL"
STATS_ROLE = "pg_read_all_stats"
EXTENSIONS = ("cube", "earthdistance")  # gists/migrations/0001_initial.py
# The verifier reaches the DDL log: a long password keeps it useless to whoever reads the log.
MIN_PASSWORD_LENGTH = 20

ROLE_SQL = "SELECT rolsuper OR rolreplication OR rolbypassrls FROM pg_roles WHERE rolname = %s"
MEMBERSHIPS_SQL = """
SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = %s) ORDER BY 1
"""


class RoleRefused(Exception):
    """The role exists with powers this command cannot take back."""


def ensure_app_role(conn: psycopg.Connection[Any], role: str, password: str) -> bool:
    """Make ``role`` the app's role in ``conn``'s database (see the module); True if it was created.

    ``conn`` is the master user's, in autocommit mode; all or nothing: a failure changes nothing.
    """
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    name = sql.Identifier(role)
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        found = cur.execute(ROLE_SQL, [role]).fetchone()
        if found and found[0]:
            raise RoleRefused(f"role {role} is a superuser, replication or BYPASSRLS role: not the app's to run as")
        cur.execute(
            sql.SQL("{} ROLE {} LOGIN INHERIT NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                sql.SQL("ALTER" if found else "CREATE"), name, sql.Literal(verifier.decode())
            )
        )
        for extension in EXTENSIONS:
            cur.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {} SCHEMA public").format(sql.Identifier(extension)))
        # Giving a schema to a role takes membership of it, unless one is a superuser (RDS: never).
        cur.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(name))
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(name, name))
        cur.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(name, name))
        cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(STATS_ROLE), name))
        for (other,) in cur.execute(MEMBERSHIPS_SQL, [role]).fetchall():
            if other != STATS_ROLE:
                cur.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(other), name))
        # A grant made by another role survives a REVOKE (with a warning only): checked.
        left = [other for (other,) in cur.execute(MEMBERSHIPS_SQL, [role]).fetchall()]
        if left != [STATS_ROLE]:
            raise RoleRefused(f"role {role} stays a member of {', '.join(left)}: revoke by hand all but {STATS_ROLE}")
    return not found


class Command(BaseCommand):
    help = (
        f"Create or update the app's own database role (LOGIN, {STATS_ROLE}, owner of its schema), "
        f"as the master user of {ADMIN_URL}."
    )
    requires_system_checks: list[str] = []  # it uses no connection of the app's

    def handle(self, *args: Any, **options: Any) -> None:
        admin_url = os.environ.get(ADMIN_URL, "").strip()
        if not admin_url:
            raise CommandError(f"{ADMIN_URL} is not set: the master user's postgres:// URL, for this command only")
        try:
            admin_password = conninfo_to_dict(admin_url).get("password") or ""
        except psycopg.ProgrammingError:
            raise CommandError(f"{ADMIN_URL} is not a valid postgres:// URL") from None
        app = settings.DATABASES[DEFAULT_DB_ALIAS]
        role = app.get("USER") or os.environ.get("PGUSER", "")
        password = app.get("PASSWORD") or os.environ.get("PGPASSWORD", "")
        database = app["NAME"]
        if not role or len(password) < MIN_PASSWORD_LENGTH:
            raise CommandError(
                f"the app's database user and a password of {MIN_PASSWORD_LENGTH} characters or more are needed "
                "(DATABASE_URL, or PGUSER and PGPASSWORD)"
            )

        def hidden(exc: BaseException) -> str:
            text = describe(exc)
            for secret in filter(None, (admin_password, password)):
                text = text.replace(str(secret), "***")
            return text

        try:
            conn = psycopg.connect(
                admin_url, dbname=database, autocommit=True, connect_timeout=10, application_name="create_app_role"
            )
        except psycopg.Error as exc:
            raise CommandError(f"cannot connect with {ADMIN_URL}: {hidden(exc)}") from None
        with conn:
            admin = conn.execute("SELECT current_user").fetchone()
            if admin and admin[0] == role:
                raise CommandError(f"{ADMIN_URL} and the app both connect as {role}: the app needs a role of its own")
            try:
                created = ensure_app_role(conn, role, password)
            except RoleRefused as exc:
                raise CommandError(f"{exc}; nothing changed") from None
            except psycopg.Error as exc:
                raise CommandError(f"role {role} not made, nothing changed: {hidden(exc)}") from None
        self.stdout.write(
            f"role {role} {'created' if created else 'updated'} in database {database}: LOGIN, SCRAM-SHA-256 password, "
            f"member of {STATS_ROLE} only, owner of schema {role}"
        )
