from django.urls import include, path, register_converter

from . import api, views
from .converters import GistIdConverter

register_converter(GistIdConverter, "gist_id")

html = (
    [
        path("", views.gist_list, name="list"),
        path("new/", views.gist_create, name="create"),
        path("nearby/", views.gist_nearby, name="nearby"),
        path("<gist_id:gist_id>/", views.gist_detail, name="detail"),
    ],
    "gists",
)
json_api = (
    [
        path("", api.gists, name="gists"),
        path("nearby/", api.nearby, name="nearby"),
        path("<gist_id:gist_id>/", api.detail, name="detail"),
    ],
    "api",
)

urlpatterns = [
    path("gists/", include(html)),
    path("api/gists/", include(json_api)),
]
