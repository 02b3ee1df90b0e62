"""Sync views for the middleware tests (ROOT_URLCONF override): each answers the ports of the
servers that ran its reads, as the servers themselves report them."""

from __future__ import annotations

from django.db import transaction
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from gists.models import Gist


def _port() -> int | None:
    qs = Gist.objects.annotate(node_port=RawSQL("current_setting('port')::int", ()))
    return qs.values_list("node_port", flat=True).first()


@csrf_exempt
def reads(request: HttpRequest) -> JsonResponse:
    """Five reads, whatever the method."""
    return JsonResponse({"ports": [_port() for _ in range(5)]})


@csrf_exempt
def write_then_read(request: HttpRequest) -> JsonResponse:
    before = _port()
    Gist.objects.create(title="sync", content="c", latitude=0, longitude=0)
    return JsonResponse({"before": before, "after": _port()})


def explicit_atomic(request: HttpRequest) -> JsonResponse:
    outside = _port()
    with transaction.atomic():
        inside = _port()
    return JsonResponse({"before": outside, "inside": inside})


urlpatterns = [
    path("reads/", reads),
    path("write-then-read/", write_then_read),
    path("explicit-atomic/", explicit_atomic),
]
