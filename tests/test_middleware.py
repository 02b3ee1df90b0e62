"""RoutingMiddleware: a routing scope per request, its reasons in the headers, unsafe methods and
ATOMIC_REQUESTS, seen from the servers' side (each node's own port)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client, override_settings

from dbrouting.context import current_state

from .factories import make_gist
from .routing_helpers import ports

pytestmark = [pytest.mark.usefixtures("warm_health"), pytest.mark.urls("tests.sync_urls")]


@pytest.fixture(autouse=True)
def one_gist(warm_health: None) -> None:
    make_gist()


def by_port() -> dict[int, str]:
    return {port: alias for alias, port in ports().items()}


def test_get__one_replica_serves_every_read_of_a_request_and_the_headers_say_why(client: Client) -> None:
    seen: set[str] = set()
    for _ in range(4):
        response = client.get("/reads/")
        served = {by_port()[p] for p in response.json()["ports"]}
        assert len(served) == 1
        (alias,) = served
        assert alias.startswith("replica")
        assert response["X-DB-Served-By"] == alias
        assert response["X-DB-Route"] == f"{alias} (replica)"
        seen.add(alias)
    assert seen == {"replica1", "replica2"}  # requests take turns


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_unsafe_methods__read_the_primary_from_the_start(client: Client, method: str) -> None:
    response = getattr(client, method)("/reads/")
    assert {by_port()[p] for p in response.json()["ports"]} == {"default"}
    assert response["X-DB-Route"] == "default (unsafe_method)"


def test_primary_read_methods__is_a_setting(client: Client) -> None:
    with override_settings(DBROUTING={**settings.DBROUTING, "PRIMARY_READ_METHODS": ["PATCH"]}):
        assert {by_port()[p] for p in client.post("/reads/").json()["ports"]} <= {"replica1", "replica2"}
        assert {by_port()[p] for p in client.patch("/reads/").json()["ports"]} == {"default"}


def test_a_write__pins_the_rest_of_its_request_and_the_header_shows_both(client: Client) -> None:
    with override_settings(DBROUTING={**settings.DBROUTING, "PRIMARY_READ_METHODS": []}):
        response = client.post("/write-then-read/")
    body = response.json()
    assert by_port()[body["before"]].startswith("replica")
    assert by_port()[body["after"]] == "default"
    assert response["X-DB-Route"] == f"default (pinned), default (write), {by_port()[body['before']]} (replica)"


@pytest.fixture
def atomic_requests() -> Iterator[None]:
    """ATOMIC_REQUESTS on the primary, where Django's handler reads it (connections.settings)."""
    connections.settings["default"]["ATOMIC_REQUESTS"] = True
    try:
        yield
    finally:
        connections.settings["default"]["ATOMIC_REQUESTS"] = False


@pytest.mark.usefixtures("atomic_requests")
def test_atomic_requests__a_get_reads_a_replica_until_a_write_and_an_explicit_atomic_the_primary(
    client: Client,
) -> None:
    get = client.get("/reads/")
    assert {by_port()[p] for p in get.json()["ports"]} <= {"replica1", "replica2"}
    assert get["X-DB-Route"].endswith("(replica)")
    with override_settings(DBROUTING={**settings.DBROUTING, "PRIMARY_READ_METHODS": []}):
        write = client.post("/write-then-read/").json()
    assert by_port()[write["before"]].startswith("replica")
    assert by_port()[write["after"]] == "default"
    nested = Client().get("/explicit-atomic/").json()  # no causal token from the write above
    assert by_port()[nested["before"]].startswith("replica")
    assert by_port()[nested["inside"]] == "default"  # an explicit atomic() inside the view


@pytest.mark.usefixtures("atomic_requests")
def test_atomic_requests__only_the_views_own_block_is_exempt(client: Client) -> None:
    in_view, after_view = client.get("/atomic-after-view/")["X-Ports"].split(",")
    assert by_port()[int(in_view)].startswith("replica")  # inside ATOMIC_REQUESTS' block, no write yet
    assert by_port()[int(after_view)] == "default"  # an atomic block of its own, after the view
    (port,) = client.get("/non-atomic/").json()["ports"]
    assert by_port()[port].startswith("replica")


@pytest.mark.parametrize(("method", "expected"), [("get", "replica"), ("post", "default")])
def test_streaming__reads_after_the_view_stay_in_the_requests_scope(client: Client, method: str, expected: str) -> None:
    before = current_state().tally()
    response = getattr(client, method)("/streamed/")
    served = {by_port()[int(line)] for line in b"".join(response.streaming_content).decode().split()}
    assert len(served) == 1
    assert next(iter(served)).startswith(expected)
    assert current_state().tally() == before  # not this test's (the thread's) scope
