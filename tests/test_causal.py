"""Read-your-writes across requests by WAL position (the causal token)."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from pgcluster import Cluster

from dbrouting import causal, causal_token, read_after, replica_health, routing_scope
from dbrouting.causal import CausalToken
from dbrouting.health import cache
from gists.models import Gist

from .conftest import wait_for_replicas, wait_until
from .factories import make_gist
from .routing_helpers import pause_replay, resume_replay, served_by

pytestmark = pytest.mark.usefixtures("warm_health")

COOKIE = "dbrouting_causal"
BODY = {"title": "mine", "content": "c", "latitude": 1.0, "longitude": 2.0}


@pytest.fixture(autouse=True)
def _one_gist_and_fresh_warnings(warm_health: None) -> None:
    make_gist(title="existing")
    causal._warned.clear()


def create(client: Client) -> str:
    response = client.post("/api/gists/", data=json.dumps(BODY), content_type="application/json")
    assert response.status_code == 201
    assert COOKIE in response.cookies
    return response.json()["gist_id"]


def read(client: Client, gist_id: str) -> tuple[int, str]:
    response = client.get(f"/api/gists/{gist_id}/")
    return response.status_code, response["X-DB-Served-By"]


def replayed(alias: str, lsn: int) -> bool:
    health = replica_health().get(alias)
    return health is not None and (health.replay_lsn or 0) >= lsn


def token_lsn(client: Client) -> int:
    request = HttpRequest()
    request.COOKIES[COOKIE] = client.cookies[COOKIE].value
    return CausalToken.decode(request.get_signed_cookie(COOKIE, salt=causal.SALT)).lsn


def test_post_then_get__served_by_the_replica_that_has_the_write(replay_control: Cluster) -> None:
    pause_replay(replay_control, "replica1")
    client = Client()
    gist_id = create(client)
    assert not Gist.objects.using("replica1").filter(gist_id=gist_id).exists()  # a stale read was possible
    lsn = token_lsn(client)
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "replica2" not in seen:
        status, node = read(client, gist_id)
        assert status == 200, node
        assert node in ("default", "replica2")
        seen.add(node)
    assert "replica2" in seen
    assert replayed("replica2", lsn)


def test_post_then_get__both_paused_reads_the_primary_until_one_resumes(replay_control: Cluster) -> None:
    pause_replay(replay_control, "replica1")
    pause_replay(replay_control, "replica2")
    client = Client()
    gist_id = create(client)
    for _ in range(5):
        assert read(client, gist_id) == (200, "default")
    resume_replay(replay_control, "replica2")
    wait_until(lambda: replayed("replica2", token_lsn(client)), what="replica2 replays the write")
    assert cache.wait_for_rounds(1)
    assert read(client, gist_id) == (200, "replica2")


def test_no_token__reads_go_to_replicas() -> None:
    gist = Gist.objects.using("default").get()
    status, node = read(Client(), gist.gist_id)
    assert status == 200
    assert node.startswith("replica")


def test_token_every_replica_passed__reads_replicas_and_the_token_is_dropped() -> None:
    client = Client()
    gist_id = create(client)
    wait_for_replicas()
    lsn = token_lsn(client)
    wait_until(lambda: replayed("replica1", lsn) and replayed("replica2", lsn))
    response = client.get(f"/api/gists/{gist_id}/")
    assert response["X-DB-Served-By"].startswith("replica")
    assert response.cookies[COOKIE]["max-age"] == 0  # deleted
    assert COOKIE not in client.cookies or not client.cookies[COOKIE].value


def test_read_only_requests__never_capture_a_token() -> None:
    gist = Gist.objects.using("default").get()
    client = Client()
    with CaptureQueriesContext(connections["default"]) as queries:
        response = client.get(f"/api/gists/{gist.gist_id}/")
    assert COOKIE not in response.cookies
    assert not any("pg_current_wal_lsn" in q["sql"] for q in queries.captured_queries)


def test_causal_token_and_read_after__outside_requests(replay_control: Cluster) -> None:
    pause_replay(replay_control, "replica1")
    with routing_scope():  # the code that writes and enqueues a task
        Gist.objects.create(title="for the task", content="c", latitude=0, longitude=0)
        token = causal_token()
    with routing_scope(), read_after(token):  # the task, in another scope
        wait_until(lambda: replayed("replica2", CausalToken.decode(token).lsn))
        assert cache.wait_for_rounds(1)
        assert {served_by() for _ in range(6)} == {"replica2"}
        assert Gist.objects.filter(title="for the task").exists()
    pause_replay(replay_control, "replica2")
    with routing_scope():
        Gist.objects.create(title="second", content="c", latitude=0, longitude=0)
        token = causal_token()
    with routing_scope():
        assert served_by().startswith("replica")  # without the token
        with read_after(token):
            assert {served_by() for _ in range(4)} == {"default"}
            assert Gist.objects.filter(title="second").exists()


def test_capture__never_behind_the_token_the_scope_came_with() -> None:
    now = causal.capture().lsn
    ahead = now + 2**30
    assert causal.capture(at_least=ahead).lsn == ahead
    assert causal.capture(at_least=1).lsn >= now


def test_read_after__none_is_no_constraint_and_garbage_is_a_value_error() -> None:
    with read_after(None):
        assert served_by().startswith("replica")
    with pytest.raises(ValueError, match="malformed"):
        read_after("not-a-token")


def signed(value: str, salt: str = causal.SALT) -> str:
    response = HttpResponse()
    response.set_signed_cookie(COOKIE, value, salt=salt)
    return response.cookies[COOKIE].value


@pytest.mark.parametrize(
    ("cookie", "kind"),
    [
        ("garbage", "bad signature"),
        ("OTHER:0/1@1", "bad signature"),
        ("SIGNED:not a token", "malformed"),
        ("SIGNED:FFFFFFFF/FFFFFFF0@{old}", "another cluster"),
        ("SIGNED:0/1@99999999999999", "future"),
    ],
)
def test_forged_or_garbled_cookie__is_ignored_dropped_and_logged_once(
    caplog: pytest.LogCaptureFixture, cookie: str, kind: str
) -> None:
    if cookie.startswith("SIGNED:"):
        cookie = signed(cookie.removeprefix("SIGNED:").format(old=int((time.time() - 60) * 1000)))
    elif cookie.startswith("OTHER:"):  # validly signed, for another purpose
        cookie = signed(cookie.removeprefix("OTHER:"), salt="another-app")
    gist = Gist.objects.using("default").get()
    caplog.set_level(logging.DEBUG, logger="dbrouting")
    for _ in range(2):
        client = Client()
        client.cookies[COOKIE] = cookie
        response = client.get(f"/api/gists/{gist.gist_id}/")
        assert response.status_code == 200
        assert response["X-DB-Served-By"].startswith("replica")
        assert response.cookies[COOKIE]["max-age"] == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "causal token" in r.getMessage()]
    assert len(warnings) == 1
    assert kind in warnings[0].getMessage()


SESSION_MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "dbrouting.middleware.RoutingMiddleware"]
SESSION_MIDDLEWARE.insert(SESSION_MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
                          "dbrouting.middleware.RoutingMiddleware")  # fmt: skip


def test_session_store__post_then_get(replay_control: Cluster) -> None:
    config = {**settings.DBROUTING, "CAUSAL_TOKEN_STORE": "dbrouting.causal.SessionTokenStore"}
    with override_settings(DBROUTING=config, MIDDLEWARE=SESSION_MIDDLEWARE):
        pause_replay(replay_control, "replica1")
        pause_replay(replay_control, "replica2")
        client = Client()
        response = client.post("/api/gists/", data=json.dumps(BODY), content_type="application/json")
        assert response.status_code == 201
        assert COOKIE not in response.cookies
        for _ in range(3):
            assert read(client, response.json()["gist_id"]) == (200, "default")
