"""Write detection: which statements pin their scope, on the real primary."""

from __future__ import annotations

import pytest
from django.db import connections
from psycopg import sql

from dbrouting.context import current_state
from dbrouting.writes import writes


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("INSERT INTO t VALUES (1)", True),
        ("  update t set a = 1", True),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", True),
        ("TRUNCATE t", True),
        ("SELECT 1; DELETE FROM t", True),
        ("SELECT a INTO new_table FROM t", True),
        ("SELECT * FROM t FOR UPDATE", True),  # row locks: the rest of the scope follows them
        ("SELECT * FROM t FOR KEY SHARE", True),
        ("EXPLAIN ANALYZE DELETE FROM t", True),
        ("CALL do_things()", True),
        ("VACUUM t", True),
        ("SELECT 1", False),
        ("(SELECT 1) UNION (SELECT 2)", False),
        ("WITH x AS (SELECT 1) SELECT * FROM x", False),
        ("SELECT 'INSERT INTO t', \"update\" FROM t -- DELETE\n", False),  # literals, identifiers, comments
        ("SELECT $$ DELETE $$, $tag$ UPDATE t $tag$ /* MERGE */", False),
        ("SAVEPOINT s1; RELEASE SAVEPOINT s1", False),
        ("SET TIME ZONE 'UTC'", False),
        ("SHOW server_version", False),
        (b"SELECT 1", False),
        (sql.SQL("SELECT {} FROM {}").format(sql.Identifier("delete"), sql.Identifier("t")), False),
        (sql.SQL("INSERT INTO {} VALUES (%s)").format(sql.Identifier("t")), True),
        ("SELECT share1, x1update FROM t", False),  # words, not keywords
        ("SELECT E'\\''; DELETE FROM t; -- '", True),  # an escaped quote in an E-string ends nothing
        ("", False),
    ],
)
def test_writes__allow_list_of_read_only_statements(statement: object, expected: bool) -> None:
    assert writes(statement) is expected


@pytest.mark.usefixtures("live_db")
def test_raw_sql_write_on_the_primary__pins_the_scope() -> None:
    assert not current_state().pinned
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        assert not current_state().pinned
        cursor.execute("CREATE TEMP TABLE pin_me (v int)")
    assert current_state().pinned
    assert current_state().wrote


@pytest.mark.usefixtures("live_db")
def test_composed_insert_on_the_primary__pins_the_scope() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE composed (v int)")
    current_state().pinned = current_state().wrote = False
    statement = sql.SQL("INSERT INTO {} VALUES (%s)").format(sql.Identifier("composed"))
    with connections["default"].cursor() as cursor:
        cursor.execute(statement, [1])
        assert cursor.rowcount == 1
    assert current_state().pinned
    assert current_state().wrote
