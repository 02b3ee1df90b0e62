"""Small helpers to make gists in tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from gists.models import Gist, new_gist_id

from .conftest import wait_for_replicas
from .routing_helpers import as_another_client


def make_gist(*, title: str = "A gist", latitude: float = 48.85, longitude: float = 2.35, **extra: object) -> Gist:
    """A gist written on the primary, and replicated before this returns."""
    content = extra.pop("content", "Some content.")
    gist = as_another_client(  # the test's own reads stay unpinned
        lambda: Gist.objects.using("default").create(
            title=title, content=content, latitude=latitude, longitude=longitude, **extra
        )
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
    made = as_another_client(lambda: Gist.objects.using("default").bulk_create(rows))
    wait_for_replicas()
    return made
