"""gists.middleware: a database that cannot be reached is a 503 with Retry-After, and the log line
about it cannot be forged by the client's path."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError
from django.test import RequestFactory

from gists.middleware import DatabaseUnavailableMiddleware


def test_unavailable__503_with_retry_after_and_a_log_line_the_path_cannot_break(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gists")
    request = RequestFactory().post("/api/gists/%0A2026-01-01 00:00:00 INFO admin logged in")
    response = DatabaseUnavailableMiddleware(lambda r: None).process_exception(request, OperationalError("gone\nx"))
    assert response is not None
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert message == "database unavailable for 'POST' '/api/gists/\\n2026-01-01 00:00:00 INFO admin logged in': gone"
