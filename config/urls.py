from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from dbrouting.views import metrics_view
from gists.ratelimits import limit

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="gists:list", permanent=False)),
    # The admin's login, limited per client address and per user name (gists/ratelimits.py).
    path("admin/login/", limit("login")(limit("login_user", key="user_name")(admin.site.login))),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("", include("gists.urls")),
]

handler404 = "gists.views.not_found"
handler500 = "gists.views.server_error"
