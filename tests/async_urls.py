"""Async views for the routing tests (ROOT_URLCONF override)."""

from __future__ import annotations

from django.db.models.expressions import RawSQL
from django.http import HttpRequest, JsonResponse
from django.urls import path

from dbrouting import use_primary
from gists.models import Gist


async def _port() -> int | None:
    qs = Gist.objects.annotate(node_port=RawSQL("current_setting('port')::int", ()))
    return await qs.values_list("node_port", flat=True).afirst()


async def served(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"port": await _port()})


@use_primary()
async def served_primary(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"port": await _port()})


async def write_then_read(request: HttpRequest) -> JsonResponse:
    before = await _port()
    await Gist.objects.acreate(title="async", content="c", latitude=0, longitude=0)
    return JsonResponse({"before": before, "after": await _port()})


urlpatterns = [
    path("served/", served),
    path("served-primary/", served_primary),
    path("write-then-read/", write_then_read),
]
