"""The nearby page's picture (gists.picture): where each result lands around the searched point,
and the SVG the page serves (links, escaped titles, accessible, nothing fetched)."""

from __future__ import annotations

import math
import re

import pytest
from django.test import Client

from gists import geo, picture
from gists.models import Gist
from gists.picture import RADIUS, SIZE, Place, draw

from .factories import make_gist

MIDDLE = SIZE // 2


def destination(lat: float, lng: float, bearing_deg: float, distance_m: float) -> tuple[float, float]:
    """The point ``distance_m`` from (lat, lng) at ``bearing_deg`` on the sphere (the direct
    problem: worked out here, apart from the bearing the module computes)."""
    phi, lam, theta = math.radians(lat), math.radians(lng), math.radians(bearing_deg)
    delta = distance_m / geo.EARTH_RADIUS_M
    phi2 = math.asin(math.sin(phi) * math.cos(delta) + math.cos(phi) * math.sin(delta) * math.cos(theta))
    lam2 = lam + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi), math.cos(delta) - math.sin(phi) * math.sin(phi2)
    )
    return math.degrees(phi2), (math.degrees(lam2) + 540) % 360 - 180


def place_at(lat: float, lng: float, bearing_deg: float, distance_m: float, title: str = "g") -> Place:
    to_lat, to_lng = destination(lat, lng, bearing_deg, distance_m)
    return Place(to_lat, to_lng, distance_m, title, f"/gists/{title}/")


@pytest.mark.parametrize(("lat", "lng"), [(48.85, 2.35), (-33.9, 151.2), (0.0, 179.99), (78.2, 15.6)])
@pytest.mark.parametrize("radius_m", [1_000.0, 500_000.0, 15_000_000.0])
def test_draw__a_gist_at_the_radius_lands_on_the_circle_at_its_bearing(lat: float, lng: float, radius_m: float) -> None:
    bearings = [0, 45, 90, 135, 180, 225, 270, 315]
    dots = draw(lat, lng, radius_m, [place_at(lat, lng, b, radius_m) for b in bearings]).dots
    for bearing, dot in zip(bearings, dots, strict=True):
        dx, dy = dot.x - MIDDLE, dot.y - MIDDLE
        assert math.hypot(dx, dy) == pytest.approx(RADIUS, abs=0.01)
        assert math.degrees(math.atan2(dx, -dy)) % 360 == pytest.approx(bearing, abs=0.01)  # clockwise from up


def test_draw__north_is_up_east_is_right_half_the_radius_half_way() -> None:
    north, east, south, west = (place_at(10.0, 20.0, b, 2_500.0) for b in (0, 90, 180, 270))
    dots = draw(10.0, 20.0, 5_000.0, [north, east, south, west]).dots
    half = RADIUS / 2
    expected = [(MIDDLE, MIDDLE - half), (MIDDLE + half, MIDDLE), (MIDDLE, MIDDLE + half), (MIDDLE - half, MIDDLE)]
    assert [(d.x, d.y) for d in dots] == [pytest.approx(e, abs=0.01) for e in expected]


def test_draw__across_the_antimeridian_east_stays_right() -> None:
    [dot] = draw(0.0, 179.99, 5_000.0, [Place(0.0, -179.99, 2_226.4, "g", "/g/")]).dots
    assert dot.x > MIDDLE + RADIUS / 3
    assert dot.y == pytest.approx(MIDDLE, abs=0.01)


def test_draw__the_searched_point_itself_at_the_centre_and_a_rounding_past_the_circle_on_it() -> None:
    here, past = Place(10.0, 20.0, 0.0, "here", "/h/"), place_at(10.0, 20.0, 90, 5_000.0000001)
    dots = draw(10.0, 20.0, 5_000.0, [here, past]).dots
    assert (dots[0].x, dots[0].y) == (MIDDLE, MIDDLE)
    assert math.hypot(dots[1].x - MIDDLE, dots[1].y - MIDDLE) == pytest.approx(RADIUS, abs=0.01)


def test_picture__in_words() -> None:
    drawn = draw(48.8566, 2.3522, 5_000.0, [place_at(48.8566, 2.3522, 0, 1234.0)])
    assert drawn.label == "1 gist within 5 km of 48.857, 2.3522, north up"
    assert drawn.dots[0].distance == "1.23 km"
    lengths = [950.4, 999.6, 1000.0, 1234.0, 12_345.0, 20_000_000.0]
    assert [picture.length(m) for m in lengths] == ["950 m", "1 km", "1 km", "1.23 km", "12.3 km", "20000 km"]


# -- the page, on the real cluster -----------------------------------------------------------


def svg_of(html: str) -> str:
    [found] = re.findall(r"<svg .*?</svg>", html, re.DOTALL)
    return str(found)


@pytest.mark.usefixtures("live_db")
def test_page__each_result_a_dot_linked_to_it_on_the_circle_when_at_the_radius(client: Client) -> None:
    lat, lng = 48.8566, 2.3522
    north = make_gist(title="<script>alert(1)</script>", latitude=destination(lat, lng, 0, 3_000)[0], longitude=lng)
    east_lat, east_lng = destination(lat, lng, 90, 1_000)
    east = make_gist(title="East & near", latitude=east_lat, longitude=east_lng)
    [radius] = [g.distance_m for g in geo.nearby(Gist.objects.all(), lat, lng, 10_000, 10) if g.pk == north.pk]
    response = client.get("/gists/nearby/", {"lat": lat, "lng": lng, "radius_m": repr(radius)})
    assert response.status_code == 200
    svg = svg_of(response.content.decode())
    assert 'role="img" aria-labelledby="nearby-picture-title nearby-picture-desc"' in svg
    assert '<title id="nearby-picture-title">2 gists within 3 km of 48.857, 2.3522, north up</title>' in svg
    dots = re.findall(r'<a href="([^"]+)" tabindex="-1"><circle class="gist" cx="([\d.]+)" cy="([\d.]+)"[^>]*>'
                      r"<title>([^<]*)</title>", svg)  # fmt: skip
    by_url = {url: (float(x), float(y), title) for url, x, y, title in dots}
    assert by_url.keys() == {f"/gists/{north.gist_id}/", f"/gists/{east.gist_id}/"}
    x, y, title = by_url[f"/gists/{north.gist_id}/"]
    assert (x, y) == pytest.approx((MIDDLE, MIDDLE - RADIUS), abs=0.01)  # at the radius, due north: the circle's top
    assert title == "&lt;script&gt;alert(1)&lt;/script&gt; (3 km)"
    x, y, title = by_url[f"/gists/{east.gist_id}/"]
    assert (x, y) == pytest.approx((MIDDLE + RADIUS / 3, MIDDLE), abs=0.05)
    assert title == "East &amp; near (1 km)"
    assert "<script" not in svg
    assert re.findall(r'(?:src|href)="(?!/gists/)|url\(', svg) == []  # nothing fetched: links to gists alone


@pytest.mark.usefixtures("live_db")
def test_page__no_picture_before_a_search_when_nothing_is_found_or_the_query_is_bad(client: Client) -> None:
    make_gist(latitude=10.0, longitude=10.0)
    assert "<svg" not in client.get("/gists/nearby/").content.decode()
    nothing = client.get("/gists/nearby/", {"lat": -40, "lng": -40, "radius_m": 1000})
    assert "Nothing within that radius." in nothing.content.decode()
    assert "<svg" not in nothing.content.decode()
    bad = client.get("/gists/nearby/", {"lat": 95, "lng": 0})
    assert bad.status_code == 400
    assert "<svg" not in bad.content.decode()
