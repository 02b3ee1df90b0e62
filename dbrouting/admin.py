"""The staff-only "Replica status" page: the table of ``manage.py replica_status``, live, and each
replica's lag over the last minutes (``charts``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from .charts import lag_charts
from .models import PolicyOverride, ReplicaStatus
from .status import COLUMNS, measure, table_rows

REFRESH_SECONDS = 5


@admin.register(ReplicaStatus)
class ReplicaStatusAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Staff with the "view replica status" permission (superusers have it) may look; nobody
    adds, changes or deletes."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and user.has_perm("dbrouting.view_replicastatus"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        report = measure(fresh=False, reuse=True)  # the cache as it is, no probe, no wait, no new connection
        context = {
            **self.admin_site.each_context(request),
            "title": "Replica status",
            "opts": self.model._meta,
            "report": report,
            "columns": COLUMNS,
            "rows": table_rows(report),
            "lag_charts": lag_charts(report),
            "refresh_seconds": REFRESH_SECONDS,
        }
        return TemplateResponse(request, "admin/dbrouting/replica_status.html", context)


@admin.register(PolicyOverride)
class PolicyOverrideAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """An operator's ALL_BEHIND_POLICY for every process of every host, within a probe round
    (Django's model permissions: a superuser, or staff given them)."""

    list_display = ("policy", "expires_at", "in_force", "reason", "set_by", "set_at")
    fields = ("policy", "expires_at", "reason")

    @admin.display(boolean=True, description="in force")
    def in_force(self, obj: PolicyOverride) -> bool:
        return obj.in_force

    def save_model(self, request: HttpRequest, obj: PolicyOverride, form: Any, change: bool) -> None:
        obj.set_by = request.user.get_username()
        super().save_model(request, obj, form, change)
