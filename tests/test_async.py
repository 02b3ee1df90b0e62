"""Routing in async views: replicas, use_primary() on an async view, pinning after a write."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, override_settings

from .factories import make_gist
from .routing_helpers import ports

pytestmark = [pytest.mark.usefixtures("warm_health"), pytest.mark.urls("tests.async_urls")]


@pytest.fixture(autouse=True)
def one_gist(warm_health: None) -> None:
    make_gist()


def primary_port() -> int:
    return ports()["default"]


def get(path: str) -> dict:
    response = async_to_sync(AsyncClient().get)(path)
    assert response.status_code == 200
    return response.json()


def test_async_view__reads_from_replicas() -> None:
    served = {get("/served/")["port"] for _ in range(6)}
    assert served == {ports()["replica1"], ports()["replica2"]}


def test_async_view__use_primary_decorator() -> None:
    assert {get("/served-primary/")["port"] for _ in range(3)} == {primary_port()}


def test_async_view__a_write_pins_the_rest_of_that_request_only() -> None:
    body = get("/write-then-read/")
    assert body["before"] != primary_port()
    assert body["after"] == primary_port()
    assert get("/served/")["port"] != primary_port()


@override_settings(DBROUTING={"REPLICAS": []})
def test_async_view__no_replicas_configured_reads_the_primary() -> None:
    assert get("/served/")["port"] == primary_port()
