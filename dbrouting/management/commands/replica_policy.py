"""``manage.py replica_policy``: what reads do when no replica is within the tolerance, for the
whole fleet at once, without a deploy. The override is a row on the primary: every host's prober
reads it with its next probe (within ``CHECK_INTERVAL_SECONDS``)."""

from __future__ import annotations

import getpass
import os
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from dbrouting.conf import ALL_BEHIND_POLICIES, get_config
from dbrouting.context import use_primary
from dbrouting.models import PolicyOverride
from dbrouting.probe import describe

MAX_MINUTES = 366 * 24 * 60  # a year: longer is a setting's job
REASON_LENGTH = PolicyOverride._meta.get_field("reason").max_length or 200


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's user with no name
        return f"uid {os.getuid()}"


class Command(BaseCommand):
    help = "Show, set or clear the operator's ALL_BEHIND_POLICY override (fleet-wide, within a probe round)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("policy", nargs="?", choices=ALL_BEHIND_POLICIES, help="the policy to put in force")
        parser.add_argument("--minutes", type=float, help="the override ends after this long (default: when cleared)")
        parser.add_argument("--reason", default="", help="why, for the admin page and the next operator")
        parser.add_argument("--clear", action="store_true", help="remove the override: the setting applies again")

    def handle(self, *args: Any, policy: str | None, minutes: float | None, reason: str, clear: bool,
               **options: Any) -> None:  # fmt: skip
        if clear and policy:
            raise CommandError("give a policy or --clear, not both")
        if reason and policy is None:
            raise CommandError("--reason needs a policy")
        if len(reason) > REASON_LENGTH:
            raise CommandError(f"--reason is at most {REASON_LENGTH} characters, not {len(reason)}")
        if minutes is not None and (policy is None or not 0 < minutes <= MAX_MINUTES):
            raise CommandError(f"--minutes needs a policy and a number of minutes above 0, at most {MAX_MINUTES}")
        config = get_config()
        try:
            with use_primary(), transaction.atomic(using=config.primary):
                if clear or policy:
                    PolicyOverride.objects.all().delete()
                if policy:
                    expires = None if minutes is None else timezone.now() + timedelta(minutes=minutes)
                    PolicyOverride.objects.create(policy=policy, expires_at=expires, reason=reason, set_by=_user())
                current = PolicyOverride.current()
        except IntegrityError as exc:  # two operators at once: one override only
            raise CommandError("another override was set at the same moment: run the command again") from exc
        except DatabaseError as exc:
            raise CommandError(f"the primary cannot be reached or is not migrated: {describe(exc)}") from exc
        setting = config.all_behind_policy
        if current is None:
            self.stdout.write(f"no override: ALL_BEHIND_POLICY {setting!r} (the setting) is in force")
        else:
            why = f"set by {current.set_by or '?'}" + (f": {current.reason}" if current.reason else "")
            self.stdout.write(f"operator's override in force: {current} ({why}); the setting is {setting!r}")
