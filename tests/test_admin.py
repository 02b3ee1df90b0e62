"""The Gist admin: list columns, search and filters, for staff only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from .conftest import wait_for_replicas
from .factories import make_gist

pytestmark = pytest.mark.usefixtures("live_db")


@pytest.fixture
def staff_client() -> Client:
    User.objects.db_manager("default").create_superuser("admin", "admin@example.com", "pw-for-tests-only")
    wait_for_replicas()
    client = Client()
    assert client.login(username="admin", password="pw-for-tests-only")
    wait_for_replicas()  # the session row, which the next request reads
    return client


def test_admin__changelist_lists_searches_and_filters(staff_client: Client) -> None:
    make_gist(title="Museum of Art")
    make_gist(title="Bakery")
    page = staff_client.get("/admin/gists/gist/")
    assert page.status_code == 200
    assert b"Museum of Art" in page.content
    assert b"Latitude" in page.content
    found = staff_client.get("/admin/gists/gist/?q=museum")
    assert b"Museum of Art" in found.content
    assert b"Bakery" not in found.content
    filtered = staff_client.get(f"/admin/gists/gist/?created_at__year={timezone.now().year}")
    assert b"Bakery" in filtered.content
    none = staff_client.get("/admin/gists/gist/?created_at__year=1999")
    assert b"Bakery" not in none.content


def test_admin__refuses_anonymous_users(client: Client) -> None:
    response = client.get("/admin/gists/gist/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
