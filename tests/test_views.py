"""The HTML pages: list, nearby, detail, create (with CSRF), and their error pages."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from gists.models import Gist

from .conftest import wait_for_replicas
from .factories import make_gist, make_many

pytestmark = pytest.mark.usefixtures("live_db")


def test_root__redirects_to_the_list(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/gists/"


def test_list__shows_newest_first_and_links_to_older(client: Client) -> None:
    make_many([(1.0, 1.0)] * 25)
    response = client.get("/gists/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index(">g0<") < html.index(">g19<")
    assert ">g20<" not in html
    older = re.search(r'href="\?cursor=([^"]+)"', html)
    assert older
    second = client.get(f"/gists/?cursor={older.group(1)}").content.decode()
    assert ">g20<" in second
    assert ">g24<" in second
    assert ">g0<" not in second


def test_list__bad_cursor_is_400(client: Client) -> None:
    assert client.get("/gists/?cursor=%%%").status_code == 400


def test_detail__shows_the_gist_escaped(client: Client) -> None:
    gist = make_gist(title="<script>alert(1)</script>", content="line one")
    html = client.get(f"/gists/{gist.gist_id}/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "line one" in html


def test_detail__unknown_id_is_404_page(client: Client) -> None:
    response = client.get("/gists/unknown-id/")
    assert response.status_code == 404
    assert b"Not found" in response.content


def test_nearby__form_then_results(client: Client) -> None:
    make_gist(title="Close by", latitude=48.8566, longitude=2.3522)
    make_gist(title="Far away", latitude=-33.8, longitude=151.2)
    blank = client.get("/gists/nearby/")
    assert blank.status_code == 200
    assert b'name="lat"' in blank.content
    html = client.get("/gists/nearby/?lat=48.857&lng=2.352&radius_m=2000").content.decode()
    assert "Close by" in html
    assert "Far away" not in html
    assert "1 result" in html


def test_nearby__bad_input_shows_the_form_with_errors(client: Client) -> None:
    response = client.get("/gists/nearby/?lat=100&lng=x")
    assert response.status_code == 400
    assert b"errorlist" in response.content


def test_create__requires_csrf_token() -> None:
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/gists/new/", {"title": "t", "content": "c", "latitude": 1, "longitude": 1})
    assert response.status_code == 403
    assert not Gist.objects.using("default").exists()


def test_create__form_round_trip_redirects_to_the_new_gist() -> None:
    browser = Client(enforce_csrf_checks=True)
    form = browser.get("/gists/new/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode())
    assert token
    data = {"csrfmiddlewaretoken": token.group(1), "title": "Cafe", "content": "Good", "latitude": 1, "longitude": 2}
    response = browser.post("/gists/new/", data)
    assert response.status_code == 302
    gist = Gist.objects.using("default").get()
    assert response["Location"] == f"/gists/{gist.gist_id}/"
    wait_for_replicas()  # the next request may read a replica
    assert b"Cafe" in browser.get(response["Location"]).content


@pytest.mark.parametrize(
    "data",
    [
        {"title": "", "content": "c", "latitude": 1, "longitude": 1},
        {"title": "t", "content": "c", "latitude": 91, "longitude": 1},
        {"title": "t", "content": "c", "latitude": "nan", "longitude": 1},
        {"title": "t", "content": "c", "latitude": 1, "longitude": "inf"},
        {"title": "t", "content": "x" * 10_001, "latitude": 1, "longitude": 1},
    ],
)
def test_create__invalid_form_is_400_and_saves_nothing(client: Client, data: dict) -> None:
    response = client.post("/gists/new/", data)
    assert response.status_code == 400
    assert b"errorlist" in response.content
    assert not Gist.objects.using("default").exists()
