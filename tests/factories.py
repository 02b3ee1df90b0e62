"""Small helpers to make gists in tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from dbrouting import routing_scope
from gists.models import Gist, new_gist_id

from .conftest import wait_for_replicas


def make_gist(*, title: str = "A gist", latitude: float = 48.85, longitude: float = 2.35, **extra: object) -> Gist:
    """A gist written on the primary, and replicated before this returns."""
    with routing_scope():  # as another client would: the test's own reads stay unpinned
        gist = Gist.objects.using("default").create(
            title=title, content=extra.pop("content", "Some content."), latitude=latitude, longitude=longitude, **extra
        )
    wait_for_replicas()
    return gist


def make_many(points: list[tuple[float, float]], start: datetime | None = None) -> list[Gist]:
    start = start or timezone.now()
    rows = [
        Gist(
            gist_id=new_gist_id(),
            title=f"g{i}",
            content="c",
            latitude=lat,
            longitude=lng,
            created_at=start - timedelta(seconds=i),
        )
        for i, (lat, lng) in enumerate(points)
    ]
    with routing_scope():
        made = Gist.objects.using("default").bulk_create(rows)
    wait_for_replicas()
    return made
