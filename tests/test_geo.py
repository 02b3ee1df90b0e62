"""Nearby search against a brute-force great-circle computation, and its use of the index."""

from __future__ import annotations

import math
import random

import pytest
from django.db import connections

from gists import geo
from gists.models import Gist
from gists.pagination import Cursor, page

from .factories import make_many

pytestmark = pytest.mark.usefixtures("live_db")


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * geo.EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def random_points(rng: random.Random, center: tuple[float, float], spread: float, n: int) -> list[tuple[float, float]]:
    lat0, lng0 = center
    points = []
    for _ in range(n):
        lat = max(-90.0, min(90.0, lat0 + rng.uniform(-spread, spread)))
        lng = ((lng0 + rng.uniform(-spread, spread) + 180.0) % 360.0) - 180.0
        points.append((lat, lng))
    return points


# Centres chosen to include the awkward places: the antimeridian, a pole, the equator.
CENTRES = [(48.85, 2.35), (0.0, 179.9), (-33.87, 151.21), (89.5, 0.0), (0.0, 0.0)]


def test_nearby__matches_brute_force_great_circle_on_random_data() -> None:
    rng = random.Random(20261127)
    points: list[tuple[float, float]] = []
    for centre in CENTRES:
        points += random_points(rng, centre, spread=1.5, n=400)
    points += [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(500)]
    make_many(points)
    rows = list(Gist.objects.using("default").values_list("gist_id", "latitude", "longitude"))

    checked = 0
    for _ in range(40):
        lat, lng = random_points(rng, rng.choice(CENTRES), spread=1.0, n=1)[0]
        radius = rng.choice([500.0, 5_000.0, 50_000.0, 150_000.0, 2_000_000.0])
        limit = rng.choice([5, 20, 100])
        expected = sorted((d, gid) for gid, plat, plng in rows if (d := haversine_m(lat, lng, plat, plng)) <= radius)[
            :limit
        ]
        got = list(geo.nearby(Gist.objects.using("default").all(), lat, lng, radius, limit))

        assert len(got) == len(expected), (lat, lng, radius, limit)
        for gist, (distance, _) in zip(got, expected, strict=True):
            # Same sphere, different formulas: agree to a millimetre per kilometre.
            assert gist.distance_m == pytest.approx(distance, rel=1e-6, abs=1e-3)
        # The same rows, except that rows tied (to a millimetre) with the last one may swap.
        if expected:
            edge = expected[-1][0] - 1e-3
            assert {gid for d, gid in expected if d < edge} <= {g.gist_id for g in got}
        checked += len(got)
    assert checked > 200  # the queries really found rows


def test_nearby__uses_the_gist_index_on_100k_rows_without_a_sequential_scan() -> None:
    with connections["default"].cursor() as cur:
        cur.execute(
            """
            INSERT INTO gists_gist (id, gist_id, title, content, latitude, longitude, created_at)
            SELECT gen_random_uuid(), md5(i::text), 't', 'c',
                   random() * 180 - 90, random() * 360 - 180, now() - i * interval '1 second'
            FROM generate_series(1, 100000) AS i
            """
        )
        cur.execute("ANALYZE gists_gist")
    for radius, limit in ((50_000, 20), (20_000_000, 100)):  # a city; the whole Earth, the largest limit
        plan = geo.nearby(Gist.objects.using("default").all(), 48.85, 2.35, radius, limit).explain()
        assert "Seq Scan" not in plan, plan
        # A KNN scan of the GiST index that stops after `limit` rows, never a scan of an area.
        assert "Index Scan using gist_position_gist_idx" in plan, plan
        assert "Order By: ((ll_to_earth(latitude, longitude))::cube <->" in plan, plan
        assert "Bitmap" not in plan, plan
    assert len(list(geo.nearby(Gist.objects.using("default").all(), 48.85, 2.35, 20_000_000, 100))) == 100
    # Page 1000 of the list starts from an index position, never an OFFSET.
    last = Gist.objects.using("default").order_by("-created_at", "-id")[20_000]
    qs = Gist.objects.using("default").all()
    rows, _ = page(qs, Cursor(last.created_at, last.id), 20)
    assert len(rows) == 20
    page_plan = (
        qs.order_by("-created_at", "-id")
        .filter(created_at__lte=last.created_at)
        .exclude(created_at=last.created_at, id__gte=last.id)[:21]
        .explain()
    )
    assert "gist_created_id_idx" in page_plan, page_plan
    assert "Seq Scan" not in page_plan, page_plan
