"""WAL positions (LSNs): PostgreSQL's text form ``16/B374D848`` and the byte position it names."""

from __future__ import annotations

import re

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse(text: str | None) -> int | None:
    """'16/B374D848' -> the byte position as an integer (None stays None); ValueError if malformed."""
    if text is None:
        return None
    match = _LSN.match(text)
    if match is None:
        raise ValueError(f"not a WAL position: {text[:40]!r}")
    return (int(match[1], 16) << 32) + int(match[2], 16)


def format(lsn: int | None) -> str | None:
    """The byte position as PostgreSQL writes it: '16/B374D848'."""
    return None if lsn is None else f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def has_replayed(replay_lsn: int | None, lsn: int | None) -> bool:
    """A node whose replay position is ``replay_lsn`` has every commit up to ``lsn`` (None: any)."""
    return lsn is None or (replay_lsn is not None and replay_lsn >= lsn)
