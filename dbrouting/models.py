from __future__ import annotations

from django.db import models


class ReplicaStatus(models.Model):
    """No table: gives the admin's "Replica status" page a place in the admin index."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "replica status"
        verbose_name_plural = "replica status"

    def __str__(self) -> str:
        return "replica status"
