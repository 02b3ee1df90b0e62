"""Keyset pagination over (created_at, id), newest first.

Page N costs what page 1 costs: each page starts from an index position given by the
cursor (the last row of the previous page), never from an OFFSET that scans N pages.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            stamp, _, ident = raw.partition("|")
            created_at = datetime.fromisoformat(stamp)
            if created_at.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(created_at, uuid.UUID(ident))
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidCursor("Invalid cursor.") from exc


def page(queryset: QuerySet[Any], cursor: Cursor | None, size: int) -> tuple[list[Any], Cursor | None]:
    """One page of ``queryset`` after ``cursor``, and the cursor of the next page (or None)."""
    ordered = queryset.order_by("-created_at", "-id")
    if cursor is not None:
        ordered = ordered.filter(created_at__lte=cursor.created_at).exclude(
            created_at=cursor.created_at, id__gte=cursor.id
        )
    rows = list(ordered[: size + 1])
    if len(rows) <= size:
        return rows, None
    last = rows[size - 1]
    return rows[:size], Cursor(last.created_at, last.id)
