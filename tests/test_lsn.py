"""WAL positions: PostgreSQL's text form and the byte position it names (no cluster needed)."""

from __future__ import annotations

import pytest

from dbrouting import lsn


@pytest.mark.parametrize(
    ("text", "position"),
    [("0/0", 0), ("0/1", 1), ("1/0", 1 << 32), ("16/B374D848", (0x16 << 32) + 0xB374D848),
     ("ffffffff/FFFFFFFF", (1 << 64) - 1), ("a/b", (10 << 32) + 11)],
)  # fmt: skip
def test_parse_and_format__round_trip(text: str, position: int) -> None:
    assert lsn.parse(text) == position
    assert lsn.format(position) == text.upper()


def test_parse_and_format__none_stays_none() -> None:
    assert lsn.parse(None) is None
    assert lsn.format(None) is None


@pytest.mark.parametrize(
    "bad", ["", "16", "16/", "/B374D848", "16/B374D848/1", "1/123456789", "123456789/1", "g/0", " 0/0", "0/0 ", "0x1/0"]
)
def test_parse__refuses_what_postgresql_never_writes(bad: str) -> None:
    with pytest.raises(ValueError, match="not a WAL position") as raised:
        lsn.parse(bad)
    assert repr(bad[:40]) in str(raised.value)


def test_parse__quotes_at_most_40_characters_of_a_bad_value() -> None:
    with pytest.raises(ValueError, match="not a WAL position") as raised:
        lsn.parse("x" * 100)
    assert str(raised.value) == f"not a WAL position: {'x' * 40!r}"


@pytest.mark.parametrize(
    ("replay", "needed", "expected"),
    [(None, None, True), (5, None, True), (None, 5, False), (4, 5, False), (5, 5, True), (6, 5, True), (0, 0, True)],
)
def test_has_replayed(replay: int | None, needed: int | None, expected: bool) -> None:
    assert lsn.has_replayed(replay, needed) is expected
