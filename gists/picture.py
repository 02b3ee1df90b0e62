"""The nearby page's picture: the searched point, the search radius and each result around it,
drawn by ``gists/_nearby_picture.html`` as inline SVG (no map tiles, no script, nothing to fetch).

The projection is azimuthal equidistant around the searched point: a result is drawn at its
bearing from the point (north up, east right), as far from the centre as it is from the point
on the Earth, to the scale of the radius. Every distance from the centre is then true at any
radius (up to the 20,000 km the search allows) and across the antimeridian, where an
equirectangular projection would stretch and tear: a result at the radius lies on the circle.
The distance is the database's own (``distance_m``, the one the search filtered on); only the
bearing is worked out here, on the same sphere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

SIZE = 320  # the SVG's viewBox is SIZE x SIZE
RADIUS = 140  # the search radius, in the picture
DOT = 4


@dataclass(frozen=True)
class Place:
    """A result to draw."""

    latitude: float
    longitude: float
    distance_m: float
    title: str
    url: str


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    title: str
    url: str
    distance: str  # for the tooltip: "1.2 km"


@dataclass(frozen=True)
class Picture:
    dots: tuple[Dot, ...]
    radius: str  # the search radius, in words: "5 km"
    center: str  # the searched point, in words

    size, middle, circle, dot = SIZE, SIZE // 2, RADIUS, DOT  # its layout, for the template

    @property
    def label(self) -> str:
        """The picture in words (its ``<title>``)."""
        count = len(self.dots)
        return f"{count} gist{'' if count == 1 else 's'} within {self.radius} of {self.center}, north up"


def bearing(lat: float, lng: float, to_lat: float, to_lng: float) -> float:
    """The initial great-circle bearing from (lat, lng) to (to_lat, to_lng), radians clockwise from north."""
    phi1, phi2, delta = math.radians(lat), math.radians(to_lat), math.radians(to_lng - lng)
    return math.atan2(
        math.sin(delta) * math.cos(phi2),
        math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(delta),
    )


def length(metres: float) -> str:
    """A distance for people, to three figures in kilometres, else in whole metres."""
    whole = round(metres)
    if whole < 1000:
        return f"{whole} m"
    km = whole / 1000
    text = f"{km:.{max(0, 2 - math.floor(math.log10(km)))}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + " km"


def draw(lat: float, lng: float, radius_m: float, places: Iterable[Place]) -> Picture:
    """The picture of ``places`` around (lat, lng), the circle being ``radius_m``."""
    dots = []
    for place in places:
        r = RADIUS * min(place.distance_m / radius_m, 1.0)  # (a rounding past the circle stays on it)
        theta = bearing(lat, lng, place.latitude, place.longitude)
        x, y = SIZE // 2 + r * math.sin(theta), SIZE // 2 - r * math.cos(theta)  # SVG's y grows downwards
        dots.append(Dot(round(x, 2), round(y, 2), place.title, place.url, length(place.distance_m)))
    return Picture(tuple(dots), length(radius_m), f"{lat:.5g}, {lng:.5g}")
