"""The admin in Chromium, under gunicorn: the login of a staff member made a moment before, a gist
added and edited, the replica status page following a paused replica without a reload, and the
admin styled as under runserver from WhiteNoise's hashed, compressed, long-cached files."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password
from django.contrib.auth.models import Permission, User
from pgcluster import Cluster
from playwright.sync_api import Page, Response, expect

from dbrouting.status import COLUMNS
from gists.models import Gist

from ..conftest import node_query, replica_aliases, usable, wait_for_replicas
from ..routing_helpers import as_another_client, pause_replay, resume_replay

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("warm_health")]

PASSWORD = "pw-for-tests-only"
# Past the tolerance (5 s), then the page's next refresh (every 5 s), with room to spare.
STATE_CHANGE_TIMEOUT_MS = 30_000
TEN_YEARS = "max-age=315360000, public, immutable"  # WhiteNoise's Cache-Control for hashed names
Screenshot = Callable[[Page, str], Path]


@functools.cache
def password_hash() -> str:
    """PASSWORD hashed as the server's production settings prefer (the tests' own settings use a
    fast MD5 that production refuses): the login checks it, with nothing to upgrade and save."""
    return make_password(PASSWORD, hasher=PBKDF2PasswordHasher())


def make_user(username: str, *, superuser: bool = False, permissions: tuple[str, ...] = ()) -> None:
    """A staff member (or superuser) written on the primary, with ``permissions`` (codenames);
    replication is not waited for."""
    user = User(username=username, password=password_hash(), is_staff=True, is_superuser=superuser)

    def save() -> None:
        user.save(using="default")
        user.user_permissions.add(*Permission.objects.using("default").filter(codename__in=permissions))

    as_another_client(save)


def log_in(page: Page, username: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user-tools")).to_contain_text(f"Welcome, {username}")


def failed(responses: list[Response]) -> list[tuple[str, int]]:
    return [(response.url, response.status) for response in responses if response.status != 200]


def pause_every_replica(cluster: Cluster) -> None:
    for alias in replica_aliases():
        pause_replay(cluster, alias)


def test_login__of_a_staff_member_made_while_the_replicas_replay_nothing(page: Page, replay_control: Cluster) -> None:
    pause_every_replica(replay_control)
    make_user("ann")
    log_in(page, "ann")
    expect(page.get_by_role("heading", level=1)).to_have_text("Site administration")
    sql = "SELECT count(*) FROM auth_user WHERE username = 'ann'"
    assert not any(node_query(alias, sql) for alias in replica_aliases())  # read-your-writes, not replication
    assert all(usable(alias) for alias in replica_aliases())


def test_gist_admin__added_then_edited__the_changelist_and_the_public_page_show_the_change(
    page: Page, replay_control: Cluster
) -> None:
    make_user("root", superuser=True)
    wait_for_replicas()
    pause_every_replica(replay_control)
    log_in(page, "root")
    page.goto("/admin/gists/gist/add/")
    page.get_by_label("Title").fill("Fountain in the Luxembourg garden")
    page.get_by_label("Content").fill("Chairs around it, free.")
    page.get_by_label("Latitude").fill("48.8462")
    page.get_by_label("Longitude").fill("2.3371")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    listed = page.locator("#result_list")
    expect(listed).to_contain_text("Fountain in the Luxembourg garden")
    gist_id = listed.locator(".field-gist_id").first.inner_text()
    listed.get_by_role("link", name="Fountain in the Luxembourg garden").click()
    page.get_by_label("Title").fill("Medici Fountain")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(listed).to_contain_text("Medici Fountain")
    expect(listed).not_to_contain_text("Luxembourg garden")
    page.goto(f"/gists/{gist_id}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Medici Fountain")


def test_replica_status__a_paused_replica_shows_lagging_then_healthy_without_a_reload(
    page: Page, replay_control: Cluster, screenshot: Screenshot
) -> None:
    make_user("sam", permissions=("view_replicastatus",))
    wait_for_replicas()
    log_in(page, "sam")
    page.goto("/admin/dbrouting/replicastatus/")
    status = page.locator("#content-main p strong").first
    row = page.locator("#replica-status tbody tr").filter(has=page.get_by_role("cell", name="replica1", exact=True))
    serving = row.locator("td").nth(COLUMNS.index("usable"))
    expect(status).to_have_text("healthy")
    expect(serving).to_have_text("yes")
    pause_replay(replay_control, "replica1")
    # A write that replica1 cannot replay: its lag grows from now on.
    as_another_client(lambda: Gist.objects.using("default").create(title="t", content="c", latitude=0, longitude=0))
    expect(serving).to_have_text("no", timeout=STATE_CHANGE_TIMEOUT_MS)
    expect(status).to_have_text("a replica is not serving reads")
    screenshot(page, "admin-replica-status")
    resume_replay(replay_control, "replica1")
    expect(serving).to_have_text("yes", timeout=STATE_CHANGE_TIMEOUT_MS)
    expect(status).to_have_text("healthy")


def test_admin_css__hashed_compressed_cached_for_years_and_styled_as_under_runserver(
    page: Page, runserver_url: str
) -> None:
    static: list[Response] = []
    page.on("response", lambda response: static.append(response) if "/static/" in response.url else None)
    page.goto("/admin/login/")
    assert static
    assert failed(static) == []
    [base_css] = [r for r in static if re.search(r"/static/admin/css/base\.[0-9a-f]{12}\.css$", r.url)]
    assert base_css.headers["cache-control"] == TEN_YEARS
    assert base_css.headers["content-encoding"] == "gzip"
    expect(page.locator("#header")).to_have_css("background-color", "rgb(65, 118, 144)")
    under_gunicorn = page.screenshot(animations="disabled")
    static.clear()
    page.goto(f"{runserver_url}/admin/login/")
    assert static
    assert failed(static) == []
    assert page.screenshot(animations="disabled") == under_gunicorn
