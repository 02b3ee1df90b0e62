from __future__ import annotations

from django.db import models
from django.utils import timezone

from .conf import ALL_BEHIND_POLICIES


class ReplicaStatus(models.Model):
    """No table: gives the admin's "Replica status" page a place in the admin index."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "replica status"
        verbose_name_plural = "replica status"

    def __str__(self) -> str:
        return "replica status"


class PolicyOverride(models.Model):
    """An operator's ``ALL_BEHIND_POLICY`` for the whole fleet, until it expires: every host's
    prober reads it from the primary with its probe (``manage.py replica_policy``, or the admin)."""

    policy = models.CharField(max_length=20, choices=[(p, p.replace("_", " ")) for p in ALL_BEHIND_POLICIES])
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until removed.")
    reason = models.CharField(max_length=200, blank=True)
    set_by = models.CharField(max_length=150, blank=True)
    set_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "all-behind policy override"

    def __str__(self) -> str:
        return f"{self.policy!r} until {f'{self.expires_at:%Y-%m-%d %H:%M:%S %Z}' if self.expires_at else 'removed'}"

    @classmethod
    def in_force(cls) -> PolicyOverride | None:
        """The newest override not expired: the one the probers read (``probe.PRIMARY_SQL``)."""
        live = models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now())
        return cls.objects.filter(live).order_by("-set_at").first()
