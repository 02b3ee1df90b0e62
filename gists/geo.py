"""Great-circle search with PostgreSQL's ``cube`` and ``earthdistance`` extensions.

A row's position is ``ll_to_earth(latitude, longitude)``, a point on a sphere of radius
``earth()`` metres, indexed with GiST (see the Gist model). A nearby search keeps the rows
inside ``earth_box(center, radius)`` (an index condition), drops the box's corners with
``earth_distance <= radius`` and orders by ``<->`` (the chord distance, which orders points as
the great-circle distance does) so the same GiST index scan returns them nearest first.
https://www.postgresql.org/docs/15/earthdistance.html
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import F, FloatField, Func, Lookup, QuerySet, Value

# earthdistance's earth() radius, in metres: distances here are on this sphere.
EARTH_RADIUS_M = 6378168.0


class EarthField(models.Field):  # type: ignore[type-arg]
    """The ``earth`` domain (a 3-D cube point); used only as an expression's output type."""

    def db_type(self, connection: Any) -> str:
        return "earth"


class LlToEarth(Func):
    function = "ll_to_earth"
    output_field = EarthField()


class EarthBox(Func):
    function = "earth_box"
    output_field = EarthField()


class EarthDistance(Func):
    function = "earth_distance"
    output_field = FloatField()


class CubeDistance(Func):
    """Euclidean distance between two cube points, indexable for KNN ordering."""

    arg_joiner = " <-> "
    template = "(%(expressions)s)"
    output_field = FloatField()


@EarthField.register_lookup
class ContainedIn(Lookup):
    lookup_name = "contained_in"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} <@ {rhs}", [*lhs_params, *rhs_params]


def position() -> LlToEarth:
    """The expression the GiST index is built on; queries must use the very same one."""
    return LlToEarth(F("latitude"), F("longitude"))


def nearby(queryset: QuerySet[Any], lat: float, lng: float, radius_m: float, limit: int) -> QuerySet[Any]:
    """Rows within ``radius_m`` metres of (lat, lng), nearest first, with ``distance_m``."""
    center = LlToEarth(Value(float(lat)), Value(float(lng)))
    return (
        queryset.alias(position=position())
        .filter(position__contained_in=EarthBox(center, Value(float(radius_m))))
        .annotate(distance_m=EarthDistance(center, F("position")))
        .filter(distance_m__lte=float(radius_m))
        .order_by(CubeDistance(F("position"), center))[:limit]
    )
