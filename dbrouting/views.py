"""``/metrics``: django-prometheus's exporter, outside DEBUG answered only to an allowed address
or to a client with the bearer token (``METRICS_TOKEN``); nobody else learns it is there."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse

from .conf import get_config

# Headers a proxy adds (AWS's load balancers always set X-Forwarded-Proto, whatever they do with
# X-Forwarded-For); a scraper that reaches the app directly sends none of them.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_FORWARDED_PROTO", "HTTP_X_REAL_IP", "HTTP_VIA")


def _allowed(request: HttpRequest) -> bool:
    if settings.DEBUG:
        return True
    config = get_config()
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if config.metrics_token is not None and scheme.lower() == "bearer":
        return hmac.compare_digest(credentials.strip().encode(), config.metrics_token.encode())
    if any(header in request.META for header in PROXY_HEADERS):
        return False  # came through a proxy: its peer address is the proxy's, whoever sent it
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in config.metrics_allowed_networks)


def metrics_view(request: HttpRequest) -> HttpResponse:
    from django_prometheus.exports import ExportToDjangoView  # the optional dependency, when served

    if not _allowed(request):
        raise Http404("not found")
    response: HttpResponse = ExportToDjangoView(request)
    return response
