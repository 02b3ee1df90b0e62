"""HTML views: list, nearby search, detail, create; and the JSON-aware error handlers."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from dbrouting import primary_available

from . import geo
from .forms import GistForm, NearbyForm, PageForm
from .models import Gist
from .pagination import Cursor, InvalidCursor, page
from .picture import Place, draw
from .ratelimits import limit


@require_safe  # GET and HEAD
def gist_list(request: HttpRequest) -> HttpResponse:
    form = PageForm(request.GET)
    cursor = None
    if form.is_valid() and form.cleaned_data["cursor"]:
        try:
            cursor = Cursor.decode(form.cleaned_data["cursor"])
        except InvalidCursor:
            return render(request, "gists/bad_request.html", {"message": "That page link is invalid."}, status=400)
    elif not form.is_valid():
        return render(request, "gists/bad_request.html", {"message": "That page link is invalid."}, status=400)
    rows, next_cursor = page(Gist.objects.all(), cursor, form.cleaned_data["page_size"])
    return render(
        request,
        "gists/list.html",
        {
            "gists": rows,
            "next_cursor": next_cursor.encode() if next_cursor else None,
            "is_first_page": cursor is None,
        },
    )


@require_safe  # GET and HEAD
def gist_nearby(request: HttpRequest) -> HttpResponse:
    form = NearbyForm(request.GET if request.GET else None)
    results = picture = None
    status = 200
    if form.is_bound:
        if form.is_valid():
            q = form.cleaned_data
            results = list(geo.nearby(Gist.objects.all(), q["lat"], q["lng"], q["radius_m"], q["limit"]))
            places = (Place(g.latitude, g.longitude, g.distance_m, g.title, gist_url(g)) for g in results)
            picture = draw(q["lat"], q["lng"], q["radius_m"], places)
        else:
            status = 400
    context = {"form": form, "results": results, "picture": picture}
    return render(request, "gists/nearby.html", context, status=status)


@require_safe  # GET and HEAD
def gist_detail(request: HttpRequest, gist_id: str) -> HttpResponse:
    gist = get_object_or_404(Gist, gist_id=gist_id)
    return render(request, "gists/detail.html", {"gist": gist})


@require_http_methods(["GET", "POST"])
@limit("write")
def gist_create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = GistForm(request.POST)
        if form.is_valid():
            gist = form.save()
            return HttpResponseRedirect(gist_url(gist))
        return render(request, "gists/create.html", {"form": form}, status=400)
    return render(request, "gists/create.html", {"form": GistForm(), "read_only": not primary_available()})


def gist_url(gist: Gist) -> str:
    return reverse("gists:detail", args=[gist.gist_id])


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"errors": {"path": ["Not found."]}}, status=404)
    return render(request, "gists/not_found.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"errors": {"server": ["Internal error; it has been logged."]}}, status=500)
    return HttpResponse("<h1>Server error</h1><p>It has been logged.</p>", status=500)
