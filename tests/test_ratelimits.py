"""Abuse limits per client address (gists/ratelimits.py): 429 with Retry-After, and nothing written."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.test import Client, RequestFactory, override_settings
from pgcluster import Cluster

from config.caches import cache_from_url
from gists import ratelimits
from gists.models import Gist

from .conftest import wait_for_replicas
from .routing_helpers import pause_replay

pytestmark = pytest.mark.usefixtures("live_db")

BODY = {"title": "t", "content": "c", "latitude": 1.0, "longitude": 2.0}


def limits(**rates: str) -> dict[str, str]:
    return {**settings.RATELIMITS, **rates}


def post_api(client: Client, **meta: str) -> object:
    return client.post("/api/gists/", data=json.dumps(BODY), content_type="application/json", **meta)


def written() -> int:
    return Gist.objects.using("default").count()


@override_settings(RATELIMITS=limits(write="3/m"))
def test_api_write__over_the_limit_is_429_with_retry_after_and_writes_nothing() -> None:
    client = Client()
    assert [post_api(client).status_code for _ in range(3)] == [201, 201, 201]
    before = written()
    refused = post_api(client)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["errors"]["rate"][0].startswith("Too many requests from your address; retry in ")
    assert written() == before
    assert client.get("/api/gists/").status_code == 200  # reads are not limited


@override_settings(RATELIMITS=limits(write="1/m"))
def test_form_write__over_the_limit_is_a_429_page_and_writes_nothing() -> None:
    client = Client()
    form = {"title": "t", "content": "c", "latitude": "1", "longitude": "2"}
    assert client.post("/gists/new/", form).status_code == 302
    before = written()
    refused = client.post("/gists/new/", form)
    assert refused.status_code == 429
    assert "Retry-After" in refused
    assert "<h1>Too many requests</h1>" in refused.content.decode()
    assert written() == before
    assert client.get("/gists/new/").status_code == 200  # the form itself still shows


@override_settings(RATELIMITS=limits(write="1/m"), TRUSTED_PROXY_COUNT=1)
def test_client_address__behind_a_declared_proxy_is_the_one_it_saw_not_what_the_client_prepends() -> None:
    client = Client(REMOTE_ADDR="10.0.0.1")  # the proxy
    assert post_api(client, HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 201
    assert post_api(client, HTTP_X_FORWARDED_FOR="198.51.100.9").status_code == 201  # another client
    # A client that prepends an address of its choice is still counted as the address the proxy saw.
    assert post_api(client, HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.7").status_code == 429


@override_settings(RATELIMITS=limits(write="1/m"), TRUSTED_PROXY_COUNT=0)
def test_client_address__without_a_declared_proxy_forwarded_headers_are_ignored() -> None:
    client = Client(REMOTE_ADDR="203.0.113.7")
    assert post_api(client, HTTP_X_FORWARDED_FOR="192.0.2.1").status_code == 201
    assert post_api(client, HTTP_X_FORWARDED_FOR="192.0.2.2").status_code == 429


@override_settings(RATELIMITS=limits(login="2/m", login_user="3/m"))
def test_admin_login__limited_per_address_and_per_user_name() -> None:
    User.objects.db_manager("default").create_user("staff", "s@example.com", "right-password-1", is_staff=True)
    wait_for_replicas()
    guess = {"username": "staff", "password": "wrong", "next": "/admin/"}
    client = Client(REMOTE_ADDR="203.0.113.7")
    assert [client.post("/admin/login/", guess).status_code for _ in range(2)] == [200, 200]  # the form again
    assert client.post("/admin/login/", {**guess, "password": "right-password-1"}).status_code == 429
    # From another address, the same user name has one attempt left of its three, however spelled
    # (Django's login form reads the full-width "STAFF" as "STAFF", and names are compared case-insensitively).
    other = Client(REMOTE_ADDR="198.51.100.9")
    full_width = "\uff33\uff34\uff21\uff26\uff26"
    assert other.post("/admin/login/", {**guess, "username": f"\u3000{full_width}\t"}).status_code == 200  # padded
    assert other.post("/admin/login/", guess).status_code == 429
    assert Client(REMOTE_ADDR="192.0.2.1").get("/admin/login/").status_code == 200  # showing it is free


@override_settings(RATELIMITS=limits(causal="3/m"))
def test_causal_token__requests_that_carry_one_are_limited_others_not(replay_control: Cluster) -> None:
    for alias in ("replica1", "replica2"):
        pause_replay(replay_control, alias)
    client = Client()
    assert post_api(client).status_code == 201
    assert client.cookies["dbrouting_causal"].value  # no replica has the write: its reads go to the primary
    assert [client.get("/api/gists/").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert Client().get("/api/gists/").status_code == 200  # a client without a token is not limited


@override_settings(
    RATELIMITS=limits(write="1/m"),
    CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}},
)
def test_cache_down__requests_go_through_and_the_failure_is_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimits, "_cache_error_logged_at", -ratelimits.CACHE_ERROR_LOG_INTERVAL_S)
    caplog.set_level(logging.ERROR, logger="gists")
    client = Client()
    assert [post_api(client).status_code for _ in range(2)] == [201, 201]
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("rate limits not counted: the cache failed (")


def test_cache_hung__requests_wait_a_quarter_second_not_forever(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimits, "_cache_error_logged_at", -ratelimits.CACHE_ERROR_LOG_INTERVAL_S)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (the kernel does), never answers
        port = silent.getsockname()[1]
        with override_settings(CACHES={"default": cache_from_url(f"redis://127.0.0.1:{port}/0")}):
            started = time.monotonic()
            assert post_api(Client()).status_code == 201
            assert time.monotonic() - started < 2  # redis-py's own retries and back-off would take ~5 s
    assert "the cache failed" in caplog.text


@override_settings(RATELIMITS=limits(write="1/m"), RATELIMIT_ENABLE=False)
def test_disabled__no_limit() -> None:
    client = Client()
    assert [post_api(client).status_code for _ in range(3)] == [201, 201, 201]


@override_settings(RATELIMITS=limits(write="20 per minute", login=""))
def test_check__a_rate_that_is_not_one_is_an_error_and_empty_is_no_limit() -> None:
    errors = [e for e in run_checks() if e.id == "gists.E001"]
    assert [e.msg for e in errors] == ["RATELIMITS['write'] is '20 per minute', not a rate"]


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_client_address__two_proxies_the_second_hop_from_the_right_ports_and_mapped_ipv4_read_plainly() -> None:
    def address(forwarded: str) -> str:
        return ratelimits.client_ip(RequestFactory().get("/", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR="10.0.0.2"))

    assert address("192.0.2.1, 203.0.113.7, 10.0.0.1") == "203.0.113.7"
    assert address("203.0.113.7:51234, 10.0.0.1") == "203.0.113.7"
    assert address("[2001:db8::7]:443, 10.0.0.1") == "2001:db8::"  # its /64
    assert address("::ffff:203.0.113.7, 10.0.0.1") == "203.0.113.7"
    assert address("not-an-address, 10.0.0.1") == ratelimits.UNKNOWN
    assert address("10.0.0.1") == ratelimits.UNKNOWN  # fewer hops than proxies: not a request they sent


@override_settings(RATELIMITS=limits(write="1/m"), TRUSTED_PROXY_COUNT=0)
def test_client_address__unreadable_is_one_limited_bucket_not_a_free_pass(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimits, "_unknown_logged", False)
    client = Client(REMOTE_ADDR="")  # gunicorn behind a proxy on a unix socket, no proxy declared
    assert post_api(client).status_code == 201
    assert post_api(client).status_code == 429
    assert "such requests share one rate limit" in caplog.text


@override_settings(RATELIMITS=limits(write="1/m"))
def test_client_address__ipv6_clients_count_per_slash_64() -> None:
    assert post_api(Client(REMOTE_ADDR="2001:db8:1:2::10")).status_code == 201
    assert post_api(Client(REMOTE_ADDR="2001:db8:1:2::99")).status_code == 429  # the same /64: one client
    assert post_api(Client(REMOTE_ADDR="2001:db8:1:3::10")).status_code == 201


@pytest.mark.parametrize("rate", ["0/m", "1/0m", "1/00s"])
def test_check__a_zero_count_or_period_is_an_error(rate: str) -> None:
    with override_settings(RATELIMITS=limits(write=rate)):
        assert [e.id for e in run_checks() if e.id.startswith("gists.E")] == ["gists.E001"]


@override_settings(TRUSTED_PROXY_COUNT=-1)
def test_check__a_negative_proxy_count_is_an_error() -> None:
    assert [e.id for e in run_checks() if e.id.startswith("gists.E")] == ["gists.E002"]
