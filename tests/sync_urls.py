"""Sync views for the middleware tests (ROOT_URLCONF override): each answers the ports of the
servers that ran its reads, as the servers themselves report them."""

from __future__ import annotations

from django.db import transaction
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.template import engines
from django.template.response import SimpleTemplateResponse
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


@transaction.non_atomic_requests
def non_atomic(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ports": [_port()]})


def atomic_after_view(request: HttpRequest) -> SimpleTemplateResponse:
    """Reads in the view, then inside an atomic block of its own after the view returned (at
    render time, once ATOMIC_REQUESTS' block is closed): that block is not the request's."""
    in_view = _port()
    response = SimpleTemplateResponse(engines["django"].from_string("rendered"))

    def after(response: SimpleTemplateResponse) -> None:
        with transaction.atomic():
            response["X-Ports"] = f"{in_view},{_port()}"

    response.add_post_render_callback(after)
    return response


def streamed(request: HttpRequest) -> StreamingHttpResponse:
    """Reads made while the response streams, after the view returned."""
    return StreamingHttpResponse(f"{_port()}\n" for _ in range(4))


urlpatterns = [
    path("streamed/", streamed),
    path("non-atomic/", non_atomic),
    path("atomic-after-view/", atomic_after_view),
    path("reads/", reads),
    path("write-then-read/", write_then_read),
    path("explicit-atomic/", explicit_atomic),
]
