"""Write detection: which statements pin their scope, on the real primary."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connections
from django.test import override_settings
from psycopg import sql

from dbrouting import causal, sockets
from dbrouting.context import current_state
from dbrouting.writes import detect_writes, install_write_detector, note_write, statement_text, writes


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
        ("/* a hint */ SELECT 1", False),  # a comment first: the verb after it
        ("SELECT 1; TRUNCATE t", True),  # each statement on its own
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


@pytest.mark.parametrize(
    ("statement", "text"),
    [("SELECT 1", "SELECT 1"), (b"SELECT \xc3\xa9", "SELECT é"), (bytearray(b"SELECT 2"), "SELECT 2"),
     (memoryview(b"SELECT 3"), "SELECT 3"), (b"SELECT \xff", "SELECT \ufffd"),
     (sql.SQL("SELECT {}").format(sql.Identifier("a b")), 'SELECT "a b"')],
)  # fmt: skip
def test_statement_text__of_every_form_django_and_psycopg_pass(statement: object, text: str) -> None:
    assert statement_text(statement) == text


def test_writes__every_statement_of_several_is_asked() -> None:
    assert writes("SELECT 1; SELECT 2;") is False
    assert writes(";;SELECT 1") is False
    assert writes("SELECT 1;\nupdate t set a = 1") is True
    assert writes("select 1 into t2") is True  # lower case, as ORMs rarely but people often write


class Wrapper:
    """What ``execute_wrapper`` hands on as ``context["connection"]``: enough of Django's."""

    def __init__(self, alias: str = "default", in_atomic_block: bool = True) -> None:
        self.alias, self.in_atomic_block = alias, in_atomic_block
        self.connection: object = None
        self.execute_wrappers: list[object] = []
        self._dbrouting_socket: object = object()


def test_detect_writes__a_read_runs_alone_a_write_pins_and_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[object] = []

    def execute(statement: object, params: object, many: bool, context: object) -> str:
        ran.append((statement, params, many, context))
        return "rows"

    monkeypatch.setattr(causal, "capture", lambda: pytest.fail("no position read inside a transaction"))
    context = {"connection": Wrapper(in_atomic_block=True)}
    assert detect_writes(execute, "SELECT 1", (1,), False, context) == "rows"
    state = current_state()
    assert (state.wrote, state.pinned) == (False, False)
    assert detect_writes(execute, "INSERT INTO t VALUES (%s)", [(1,), (2,)], True, context) == "rows"
    assert (state.wrote, state.pinned, state.write_lsn) == (True, True, None)
    assert ran == [("SELECT 1", (1,), False, context), ("INSERT INTO t VALUES (%s)", [(1,), (2,)], True, context)]


def test_detect_writes__an_autocommit_write_reads_its_position_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(causal, "capture", lambda: causal.CausalToken(777, 0))
    context = {"connection": Wrapper(in_atomic_block=False)}
    detect_writes(lambda *args: None, "DELETE FROM t", None, False, context)
    assert current_state().write_lsn == 777

    def gone() -> causal.CausalToken:
        raise DatabaseError("the primary went away")

    monkeypatch.setattr(causal, "capture", gone)
    detect_writes(lambda *args: None, "DELETE FROM t", None, False, context)
    assert current_state().write_lsn is None  # unknown now: the request's end tries again


@override_settings(DBROUTING={"PIN_AFTER_WRITE": False})
def test_note_write__marks_the_write_and_pins_only_if_asked() -> None:
    assert note_write() == "default"
    assert (current_state().wrote, current_state().pinned) == (True, False)


def test_install_write_detector__on_the_primarys_connections_once(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[tuple[object, ...]] = []
    monkeypatch.setattr(sockets, "register", lambda *args: registered.append(args))
    primary, replica = Wrapper("default"), Wrapper("replica1")
    for _ in range(2):
        install_write_detector(None, primary)
        install_write_detector(None, replica)
    assert (primary.execute_wrappers, replica.execute_wrappers, registered) == ([detect_writes], [], [])
    fresh = Wrapper("default")
    del fresh._dbrouting_socket  # Django's own engine: registered here, for the prober to cut
    fresh.connection = raw = object()
    install_write_detector(None, fresh)
    assert registered == [("default", fresh, raw)]
