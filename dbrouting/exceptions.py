"""The errors dbrouting raises itself, under one base class.

Two kinds of error stay Django's, on purpose: bad settings are ``ImproperlyConfigured`` (start-up
and ``manage.py check`` report them), and a replica refused because the health cache found it
down is an ``OperationalError`` subclass, so that Django, our failover and callers treat it as
any other connection failure.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError


class DbRoutingError(Exception):
    """Base class of dbrouting's own errors."""


class SettingError(DbRoutingError, ImproperlyConfigured):
    """A bad ``DBROUTING`` setting; ``check_id`` is the system check that reports it."""

    def __init__(self, message: str, check_id: str = "dbrouting.E007") -> None:
        super().__init__(message)
        self.check_id = check_id


class InvalidToken(DbRoutingError, ValueError):
    """A causal token that is malformed or claims to come from the future. Requests ignore it
    (and drop the cookie); ``read_after()`` raises it: a task was handed garbage."""


class RoutingBlockError(DbRoutingError, RuntimeError):
    """A routing block (``use_primary()``, ``max_staleness()``...) exited out of order: the
    routing state would be restored wrongly, so this is refused loudly."""


class ReplicaMarkedDown(DbRoutingError, OperationalError):
    """A connection to a replica the health cache has just found down was not attempted."""


class PrimaryUnavailable(DbRoutingError, OperationalError):
    """A connection to a primary that the health cache has just found hung was not attempted."""
