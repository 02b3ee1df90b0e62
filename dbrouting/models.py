from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.utils import timezone

from .conf import ALL_BEHIND_POLICIES, OVERRIDE_TABLE


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
    prober reads it from the primary with its probe (``manage.py replica_policy``, or the admin).
    One at most: saving one removes the others."""

    policy = models.CharField(max_length=20, choices=[(p, p.replace("_", " ")) for p in ALL_BEHIND_POLICIES])
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until removed.")
    reason = models.CharField(max_length=200, blank=True)
    set_by = models.CharField(max_length=150, blank=True)
    set_at = models.DateTimeField(auto_now=True)
    one = models.BooleanField(default=True, editable=False, unique=True)  # one row, by the database's word too

    class Meta:
        db_table = OVERRIDE_TABLE  # the probe reads it by this name (probe.OVERRIDE_SQL)
        constraints = [models.CheckConstraint(condition=models.Q(one=True), name="dbrouting_one_policy_override")]
        verbose_name = "all-behind policy override"

    def __str__(self) -> str:
        return f"{self.policy} until {f'{self.expires_at:%Y-%m-%d %H:%M:%S %Z}' if self.expires_at else 'removed'}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using):
            type(self).objects.using(using).exclude(pk=self.pk).delete()
            super().save(*args, **kwargs)

    def clean(self) -> None:
        if self.expires_at is not None and self.expires_at <= timezone.now():
            raise ValidationError({"expires_at": "This time has passed: the override would never be in force."})

    @property
    def in_force(self) -> bool:
        return self.expires_at is None or self.expires_at > timezone.now()

    @classmethod
    def current(cls) -> PolicyOverride | None:
        """The override in force, if any (what the probers read)."""
        found = cls.objects.first()
        return found if found is not None and found.in_force else None
