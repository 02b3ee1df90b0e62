"""Property-based fuzzing of the JSON API (marker ``fuzz``): whatever a client sends, no 5xx.

``make test`` runs a few hundred cases; ``make chaos`` runs FUZZ_EXAMPLES per target.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote, urlencode

import pytest
from django.core.cache import caches
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .chaos_harness import FIGURES

pytestmark = [pytest.mark.fuzz, pytest.mark.usefixtures("live_db")]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip

SQLISH = st.sampled_from(["'; DROP TABLE gists_gist; --", "1 OR 1=1", "\\x00", "%00", "$$", "NULL", "' OR ''='"])
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([90, -90, 180, -180, 90.0000001, -180.0000001, 0, -0.0, 1e-320]),
)
# Around the 10,000-character content limit: a short text repeated.
LONG = st.tuples(st.text(min_size=1, max_size=3), st.integers(min_value=9_990, max_value=10_010)).map(
    lambda pair: (pair[0] * pair[1])[: pair[1]]
)
TEXT = st.one_of(st.text(), SQLISH, LONG)
JSON_LEAF = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(
    JSON_LEAF,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=8,
)
GIST_BODY = st.fixed_dictionaries(
    {},
    optional={"title": st.one_of(TEXT, JSON_LEAF), "content": st.one_of(TEXT, JSON_LEAF),
              "latitude": st.one_of(NUMBERS, JSON_LEAF), "longitude": st.one_of(NUMBERS, JSON_LEAF),
              "extra": JSON},
)  # fmt: skip
PARAM = st.one_of(st.text(max_size=40), NUMBERS.map(str), SQLISH, st.sampled_from(["", "nan", "inf", "1e999", "-0"]))

counts = {"cases": 0, "5xx": 0}


def check(status: int) -> None:
    counts["cases"] += 1
    if status >= 500:
        counts["5xx"] += 1
    FIGURES["fuzz"] = dict(counts)
    assert status < 500


def encode(body: object) -> bytes:
    # allow_nan: the raw NaN and Infinity literals are part of what clients may send.
    return json.dumps(body, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


@FUZZ
@given(body=st.one_of(GIST_BODY, JSON))
def test_post__any_json_is_never_a_5xx(body: object) -> None:
    caches["default"].clear()  # each example its own client: the write limit is on, and not what is fuzzed
    response = Client().post("/api/gists/", data=encode(body), content_type="application/json")
    check(response.status_code)
    assert response.status_code != 429
    if response.status_code != 201:
        assert "errors" in response.json()


CONTENT_TYPES = st.sampled_from(
    ["application/json", "text/plain", "application/json; charset=latin-1", "multipart/form-data; boundary=x", "",
     "application/x-www-form-urlencoded"]
)  # fmt: skip
RAW = st.one_of(st.binary(max_size=2000), st.binary(min_size=1, max_size=20).map(lambda b: b * 60_000))


@FUZZ
@given(raw=RAW, content_type=CONTENT_TYPES)
def test_post__any_bytes_and_content_type_are_never_a_5xx(raw: bytes, content_type: str) -> None:
    caches["default"].clear()
    response = Client().generic("POST", "/api/gists/", raw, content_type=content_type)
    check(response.status_code)
    assert response.status_code != 429


@FUZZ
@given(lat=PARAM, lng=PARAM, radius=st.one_of(st.none(), PARAM), limit=st.one_of(st.none(), PARAM))
def test_nearby__any_query_is_never_a_5xx(lat: str, lng: str, radius: str | None, limit: str | None) -> None:
    query = {"lat": lat, "lng": lng, **({"radius_m": radius} if radius is not None else {}),
             **({"limit": limit} if limit is not None else {})}  # fmt: skip
    response = Client().get("/api/gists/nearby/?" + urlencode(query))
    check(response.status_code)


@FUZZ
@given(cursor=st.one_of(st.text(max_size=300), SQLISH), page_size=PARAM)
def test_list__any_paging_is_never_a_5xx(cursor: str, page_size: str) -> None:
    response = Client().get("/api/gists/?" + urlencode({"cursor": cursor, "page_size": page_size}))
    check(response.status_code)


@FUZZ
@given(gist_id=st.one_of(st.text(min_size=1, max_size=100), SQLISH))
def test_detail__any_id_is_never_a_5xx(gist_id: str) -> None:
    response = Client().get(f"/api/gists/{quote(gist_id, safe='')}/")
    check(response.status_code)
    response = Client().get(f"/gists/{quote(gist_id, safe='')}/")
    check(response.status_code)
