"""The JSON API: /api/gists/ (GET lists, POST creates), /api/gists/nearby/, /api/gists/<id>/.

Every client error is a 4xx with ``{"errors": {"<field>": ["<reason>", ...]}}``; nothing a
client sends can produce a 500.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from . import geo
from .forms import GistForm, NearbyForm, PageForm
from .models import Gist
from .pagination import Cursor, InvalidCursor, page
from .ratelimits import limit

GIST_FIELDS = ("title", "content", "latitude", "longitude")
NUMBER_FIELDS = ("latitude", "longitude")


def error(status: int, errors: dict[str, list[str]], **headers: str) -> JsonResponse:
    response = JsonResponse({"errors": errors}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def form_errors(form: Any) -> dict[str, list[str]]:
    return {field: [str(e["message"]) for e in errs] for field, errs in form.errors.get_json_data().items()}


def serialize(gist: Gist) -> dict[str, Any]:
    data = {
        "gist_id": gist.gist_id,
        "title": gist.title,
        "content": gist.content,
        "latitude": gist.latitude,
        "longitude": gist.longitude,
        "created_at": gist.created_at.isoformat(),
        "url": reverse("api:detail", args=[gist.gist_id]),
    }
    distance = getattr(gist, "distance_m", None)
    if distance is not None:
        data["distance_m"] = round(distance, 3)
    return data


def methods(*allowed: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Dispatch on method; others get a JSON 405 with ``Allow``."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                return error(405, {"method": [f"{request.method} is not allowed here."]}, Allow=", ".join(allowed))
            return view(request, *args, **kwargs)

        wrapper.__name__ = view.__name__
        wrapper.__doc__ = view.__doc__
        return wrapper

    return decorate


@csrf_exempt  # JSON only: browsers cannot send application/json cross-site without CORS consent
@methods("GET", "HEAD", "POST")
@limit("write")
def gists(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return create(request)
    form = PageForm(request.GET)
    if not form.is_valid():
        return error(400, form_errors(form))
    try:
        cursor = Cursor.decode(form.cleaned_data["cursor"]) if form.cleaned_data["cursor"] else None
    except InvalidCursor as exc:
        return error(400, {"cursor": [str(exc)]})
    rows, next_cursor = page(Gist.objects.all(), cursor, form.cleaned_data["page_size"])
    next_url = None
    if next_cursor is not None:
        next_url = f"{reverse('api:gists')}?cursor={next_cursor.encode()}&page_size={form.cleaned_data['page_size']}"
    return JsonResponse(
        {
            "results": [serialize(g) for g in rows],
            "next_cursor": next_cursor.encode() if next_cursor else None,
            "next": next_url,
        }
    )


def create(request: HttpRequest) -> HttpResponse:
    content_type = request.content_type or ""
    if content_type != "application/json":
        return error(415, {"content_type": ["Send the gist as application/json."]})
    try:
        body = request.body
    except RequestDataTooBig:
        return error(413, {"body": ["The request body is too large."]})
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return error(400, {"body": ["Malformed JSON."]})
    if not isinstance(data, dict):
        return error(400, {"body": ["Expected a JSON object."]})
    errors = check_types(data)
    # Fields of the right type still get the form's checks, so one answer lists every problem.
    form = GistForm(data={k: data.get(k) for k in GIST_FIELDS if k not in errors})
    if not form.is_valid():
        errors = {**form_errors(form), **errors}
    if errors:
        return error(400, errors)
    gist = form.save()
    response = JsonResponse(serialize(gist), status=201)
    response["Location"] = reverse("api:detail", args=[gist.gist_id])
    return response


def check_types(data: dict[str, Any]) -> dict[str, list[str]]:
    """What a form would coerce silently: JSON types, finiteness, encodability, unknown keys."""
    errors: dict[str, list[str]] = {}
    for key in data:
        if key not in GIST_FIELDS:
            errors[str(key)] = ["Unknown field."]
    for key in GIST_FIELDS:
        value = data.get(key)
        if value is None:
            errors[key] = ["This field is required."]
        elif key in NUMBER_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                errors[key] = ["Must be a number."]
            else:
                try:
                    finite = math.isfinite(float(value))
                except OverflowError:
                    finite = False
                if not finite:
                    errors[key] = ["Must be a finite number."]
        elif not isinstance(value, str):
            errors[key] = ["Must be a string."]
        else:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                errors[key] = ["Must be valid Unicode text."]
    return errors


@csrf_exempt  # GET only: every other method gets the JSON 405 below, not the CSRF page
@methods("GET", "HEAD")
def nearby(request: HttpRequest) -> HttpResponse:
    form = NearbyForm(request.GET)
    if not form.is_valid():
        return error(400, form_errors(form))
    query = form.cleaned_data
    rows = geo.nearby(Gist.objects.all(), query["lat"], query["lng"], query["radius_m"], query["limit"])
    return JsonResponse(
        {
            "query": {k: query[k] for k in ("lat", "lng", "radius_m", "limit")},
            "results": [serialize(g) for g in rows],
        }
    )


@csrf_exempt  # GET only, as above
@methods("GET", "HEAD")
def detail(request: HttpRequest, gist_id: str) -> HttpResponse:
    try:
        gist = get_object_or_404(Gist, gist_id=gist_id)
    except Http404:
        return error(404, {"gist_id": ["No gist with this id."]})
    return JsonResponse(serialize(gist))
