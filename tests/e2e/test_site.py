"""The public pages in Chromium, under gunicorn: create a gist with the form (read-your-writes
while the replicas replay nothing), list and paginate, search nearby."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from pgcluster import Cluster
from playwright.sync_api import Page, expect

from gists.models import Gist, new_gist_id

from ..conftest import node_query, replica_aliases, usable, wait_for_replicas
from ..routing_helpers import as_another_client, pause_replay

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("warm_health")]

PLACES = [
    ("Bench with a view of Notre-Dame", 48.8530, 2.3499),
    ("Bouquinistes on the Quai de Conti", 48.8573, 2.3390),
    ("Canal Saint-Martin locks", 48.8718, 2.3657),
    ("Shade under the plane trees of Place Dauphine", 48.8566, 2.3422),
    ("Best crêpes near Montparnasse", 48.8422, 2.3211),
]
Screenshot = Callable[[Page, str], Path]


def make_places(count: int) -> list[Gist]:
    """``count`` gists around central Paris, one a minute apart (the first is the newest),
    replicated before this returns."""
    now = timezone.now()
    places = [PLACES[i % len(PLACES)] for i in range(count)]
    rows = [
        Gist(
            gist_id=new_gist_id(),
            title=f"{title} #{i + 1}",
            content="Worth the detour.",
            latitude=lat + i / 10_000,
            longitude=lng,
            created_at=now - timedelta(minutes=i),
        )
        for i, (title, lat, lng) in enumerate(places)
    ]
    made = as_another_client(lambda: Gist.objects.using("default").bulk_create(rows))
    wait_for_replicas()
    return made


def on_replica(alias: str, gist_id: str) -> bool:
    return bool(node_query(alias, "SELECT count(*) FROM gists_gist WHERE gist_id = %s", (gist_id,)))


def test_create__the_redirect_and_the_list_show_it_while_the_replicas_replay_nothing(
    page: Page, replay_control: Cluster, screenshot: Screenshot
) -> None:
    make_places(4)
    for alias in replica_aliases():
        pause_replay(replay_control, alias)
    page.goto("/gists/new/")
    page.get_by_label("Title").fill("Night market on Rue de Bretagne")
    page.get_by_label("Content").fill("Fridays from six: oysters, cider and a brass band.")
    page.get_by_label("Latitude").fill("48.8627")
    page.get_by_label("Longitude").fill("2.3616")
    page.get_by_role("button", name="Pin it").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Night market on Rue de Bretagne")
    gist_id = re.fullmatch(r".*/gists/([\w-]+)/", page.url)
    assert gist_id is not None, page.url
    screenshot(page, "detail")
    page.get_by_role("link", name="Latest").click()
    expect(page.locator(".gist").first).to_contain_text("Night market on Rue de Bretagne")
    # Read-your-writes, not a replica that happened to have it, nor one left out for its lag:
    # no replica has the gist, and they still take reads.
    assert not any(on_replica(alias, gist_id[1]) for alias in replica_aliases())
    assert all(usable(alias) for alias in replica_aliases())


def test_list__pages_to_older_gists_and_back_to_the_newest(page: Page, screenshot: Screenshot) -> None:
    made = make_places(25)
    page.goto("/gists/")
    gists = page.locator(".gist")
    expect(gists).to_have_count(20)
    expect(gists.first).to_contain_text(made[0].title)
    screenshot(page, "list")
    page.get_by_role("link", name="Older").click()
    expect(gists).to_have_count(5)
    expect(gists.last).to_contain_text(made[-1].title)
    expect(page.get_by_role("link", name="Older")).to_have_count(0)
    page.get_by_role("link", name="Newest").click()
    expect(gists).to_have_count(20)
    expect(gists.first).to_contain_text(made[0].title)


def test_nearby__bad_input_is_explained_good_input_finds_the_nearest_first(page: Page) -> None:
    make_places(5)
    garbage = page.goto("/gists/nearby/?lat=north&lng=2.35")
    assert garbage is not None
    assert garbage.status == 400
    expect(page.locator(".errorlist")).to_have_text("Enter a number.")
    page.goto("/gists/nearby/")
    page.get_by_label("Latitude").fill("48.857")  # Place Dauphine
    page.get_by_label("Longitude").fill("2.342")
    page.get_by_label("Radius (m)").fill("0.5")  # the browser lets it through; the server says why not
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".errorlist")).to_have_text("Ensure this value is at least 1.")
    page.get_by_label("Radius (m)").fill("1000")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", level=2)).to_have_text("3 results")
    found = page.locator(".gist")
    for rank, name in enumerate(("Place Dauphine", "Quai de Conti", "Notre-Dame")):
        expect(found.nth(rank)).to_contain_text(name)


def test_metrics__not_on_the_public_site_without_the_token(base_url: str, server_env: dict[str, str]) -> None:
    # The production settings, from 127.0.0.1 (what a proxy on the same host looks like).
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{base_url}/metrics", headers=headers), timeout=10)
        assert refused.value.code == 404
    scraper = {"Authorization": f"Bearer {server_env['METRICS_TOKEN']}"}
    with urllib.request.urlopen(urllib.request.Request(f"{base_url}/metrics", headers=scraper), timeout=10) as ok:
        assert b"dbrouting_reads_total" in ok.read()
