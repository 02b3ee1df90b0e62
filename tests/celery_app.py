"""The Celery app of tests/test_celery.py: its tasks, and the worker process's set-up.

The worker (``celery -A tests.celery_app worker``) is started by the tests with
``CELERY_TEST_FOLDER`` (broker and results, kombu's filesystem transport: no server) and
``CELERY_TEST_DATABASE`` (the test database pytest-django created on the primary, which every
alias reads under that name). The test process imports this module too, to publish.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import django
from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

FOLDER_ENV = "CELERY_TEST_FOLDER"
DATABASE_ENV = "CELERY_TEST_DATABASE"

app = Celery("dbrouting_tests")


def configure(folder: Path) -> None:
    """Broker and result backend in ``folder``, shared by the test process and the worker."""
    messages = folder / "messages"
    for sub in (messages, folder / "processed", folder / "control", folder / "results"):
        sub.mkdir(parents=True, exist_ok=True)
    app.conf.update(
        broker_url="filesystem://",
        broker_transport_options={
            "data_folder_in": str(messages),
            "data_folder_out": str(messages),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "polling_interval": 0.05,
        },
        result_backend=f"file://{folder / 'results'}",
        worker_enable_remote_control=False,  # no broadcast: nothing but the tasks on the broker
    )


if os.environ.get(FOLDER_ENV):  # the worker process
    configure(Path(os.environ[FOLDER_ENV]))
    for database in settings.DATABASES.values():
        database["NAME"] = os.environ[DATABASE_ENV]
    django.setup()


@app.task
def replica_states() -> dict[str, str]:
    """Each replica's state in the worker's health cache, after one more probe round."""
    from dbrouting import replica_health
    from dbrouting.health import cache

    cache.wait_for_rounds(1)
    return {alias: health.state for alias, health in replica_health().items()}


def _read(gist_id: str) -> dict[str, Any]:
    from django.db.models.expressions import RawSQL

    from gists.models import Gist

    # One query, so one node: the port of the server that answered, and the gists it has.
    rows = list(
        Gist.objects.annotate(node_port=RawSQL("current_setting('port')::int", ())).values_list("node_port", "gist_id")
    )
    return {"port": rows[0][0] if rows else None, "found": any(g == gist_id for _, g in rows)}


@app.task(bind=True)
def read_gist(self: Any, gist_id: str) -> dict[str, Any]:
    """Which node served the task's read of the gists, whether it had ``gist_id``, and the
    causal token the message carried."""
    from dbrouting.contrib.celery import HEADER

    return {**_read(gist_id), "token": self.request.get(HEADER)}


@app.task
def write_gist(title: str) -> dict[str, Any]:
    """Create a gist on the primary, then read as ``read_gist`` does (in the same task)."""
    from gists.models import Gist

    gist_id = Gist.objects.create(title=title, content="c", latitude=0, longitude=0).gist_id
    return {**_read(gist_id), "gist_id": gist_id}
