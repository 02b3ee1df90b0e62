"""``/metrics``: django-prometheus's exporter, answered only to allowed addresses outside DEBUG."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden

from .conf import get_config


def _allowed(request: HttpRequest) -> bool:
    if settings.DEBUG:
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in get_config().metrics_allowed_networks)


def metrics_view(request: HttpRequest) -> HttpResponse:
    from django_prometheus.exports import ExportToDjangoView  # the optional dependency, when served

    if not _allowed(request):
        return HttpResponseForbidden("metrics are not served to this address\n", content_type="text/plain")
    response: HttpResponse = ExportToDjangoView(request)
    return response
