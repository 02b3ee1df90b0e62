"""The demo-data command used by `make run`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from gists.management.commands.seed_gists import CITIES
from gists.models import Gist

pytestmark = pytest.mark.usefixtures("live_db")


def test_seed__inserts_gists_near_the_cities_and_reports_progress() -> None:
    out = StringIO()
    call_command("seed_gists", count=250, batch_size=100, seed=1, stdout=out)
    assert Gist.objects.using("default").count() == 250
    assert "seeded 100/250" in out.getvalue()
    for gist in Gist.objects.using("default").all():
        assert any(abs(gist.latitude - lat) < 2 and abs(gist.longitude - lng) < 3 for _, lat, lng in CITIES)


def test_seed__skips_when_gists_exist_unless_forced() -> None:
    call_command("seed_gists", count=10, stdout=StringIO())
    out = StringIO()
    call_command("seed_gists", count=10, stdout=out)
    assert "nothing seeded" in out.getvalue()
    assert Gist.objects.using("default").count() == 10
    call_command("seed_gists", count=5, force=True, stdout=StringIO())
    assert Gist.objects.using("default").count() == 15


def test_seed__rejects_negative_counts() -> None:
    with pytest.raises(CommandError, match="--count"):
        call_command("seed_gists", count=-1, stdout=StringIO())
