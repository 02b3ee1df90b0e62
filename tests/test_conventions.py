"""Django's own routing conventions, kept while every replica lags: the replicas' replay is
paused, so a row written a moment ago exists on the primary only (checked in each test)."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from pgcluster import Cluster

from dbrouting import routing_scope
from dbrouting.context import current_state
from gists.models import Gist

from .factories import make_gist
from .routing_helpers import as_another_client, decision, pause_replay

pytestmark = pytest.mark.usefixtures("warm_health")


@pytest.fixture
def paused(warm_health: None, replay_control: Cluster) -> None:
    """Both replicas paused: within the tolerance a while, but missing what is written now."""
    make_gist(title="before the pause")  # something every replica has
    for alias in ("replica1", "replica2"):
        pause_replay(replay_control, alias)


def on_primary_only(model: type, **lookup: object) -> bool:
    return model.objects.using("default").filter(**lookup).exists() and not any(
        model.objects.using(alias).filter(**lookup).exists() for alias in ("replica1", "replica2")
    )


def written_elsewhere(**fields: object) -> User:
    return as_another_client(lambda: User.objects.create_user(**fields))


@pytest.mark.usefixtures("paused")
def test_admin_login__of_a_user_created_a_moment_ago_succeeds() -> None:
    user = written_elsewhere(username="newcomer", password="s3cret-pass", is_staff=True)
    assert on_primary_only(User, pk=user.pk)
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "newcomer", "password": "s3cret-pass"})
    assert response.status_code == 302, response.content[:300]
    assert response["Location"] == "/admin/"
    # The session written by the login exists on the primary only: the causal token the login
    # response carries sends the next request's reads there, so the admin opens, logged in.
    index = client.get("/admin/")
    assert index.status_code == 200
    assert index.wsgi_request.user.username == "newcomer"
    assert "default" in index["X-DB-Served-By"].split(",")


@pytest.mark.usefixtures("paused")
def test_instance_hint__related_objects_of_a_primary_object_are_read_on_the_primary() -> None:
    user = written_elsewhere(username="author")
    entry = as_another_client(
        lambda: LogEntry.objects.create(
            user=user, content_type=ContentType.objects.get_for_model(Gist), object_repr="x", action_flag=ADDITION
        )
    )
    assert on_primary_only(LogEntry, pk=entry.pk)
    loaded = LogEntry.objects.using("default").get(pk=entry.pk)
    assert loaded.user.username == "author"  # a replica has no such user yet
    loaded.full_clean()  # ForeignKey.validate() looks the user up where the entry came from


@pytest.mark.usefixtures("paused")
def test_instance_hint__deferred_fields_and_refresh_of_a_primary_object_read_the_primary() -> None:
    gist = Gist.objects.using("default").only("id").get(title="before the pause")
    as_another_client(lambda: Gist.objects.using("default").filter(pk=gist.pk).update(title="renamed", content="c2"))
    assert on_primary_only(Gist, title="renamed")
    assert gist.title == "renamed"  # the deferred field, loaded on the object's own node
    full = Gist.objects.using("default").get(pk=gist.pk)
    as_another_client(lambda: Gist.objects.using("default").filter(pk=gist.pk).update(title="renamed again"))
    full.refresh_from_db()
    assert full.title == "renamed again"


def test_instance_hint__an_object_from_a_replica_keeps_its_replica_for_related_reads() -> None:
    gist = make_gist(title="on a replica")
    with routing_scope():
        loaded = Gist.objects.get(pk=gist.pk)
        node = loaded._state.db
    assert node in ("replica1", "replica2")
    with routing_scope():
        current_state().replica = {"replica1": "replica2", "replica2": "replica1"}[node]  # the scope's own
        assert decision(instance=loaded) == (node, "replica")
        assert decision() == (current_state().replica, "replica")
