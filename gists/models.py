from __future__ import annotations

import secrets
import uuid

from django.contrib.postgres.indexes import GistIndex
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone

from .geo import position

TITLE_MAX_LENGTH = 200
CONTENT_MAX_LENGTH = 10_000


def new_gist_id() -> str:
    """22 URL-safe characters carrying 128 random bits: unguessable and fit for a URL."""
    return secrets.token_urlsafe(16)


class Gist(models.Model):
    """A short note pinned to a place."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    gist_id = models.CharField(
        max_length=32,
        unique=True,
        default=new_gist_id,
        editable=False,
        help_text="The URL-safe id users share.",
    )
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    content = models.TextField(max_length=CONTENT_MAX_LENGTH)
    latitude = models.FloatField(validators=[MinValueValidator(-90.0), MaxValueValidator(90.0)])
    longitude = models.FloatField(validators=[MinValueValidator(-180.0), MaxValueValidator(180.0)])
    # Indexed by gist_created_id_idx below, whose leading column it is.
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Keyset pagination walks (created_at, id) newest first.
            models.Index(models.F("created_at").desc(), models.F("id").desc(), name="gist_created_id_idx"),
            GistIndex(position(), name="gist_position_gist_idx"),
        ]
        constraints = [
            # NaN fails these too: PostgreSQL sorts NaN above every number.
            models.CheckConstraint(condition=models.Q(latitude__gte=-90, latitude__lte=90), name="gist_latitude_range"),
            models.CheckConstraint(
                condition=models.Q(longitude__gte=-180, longitude__lte=180), name="gist_longitude_range"
            ),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("content"), CONTENT_MAX_LENGTH), name="gist_content_length"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.gist_id})"
