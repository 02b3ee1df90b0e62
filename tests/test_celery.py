"""dbrouting.contrib.celery: a routing scope per task, and the causal token from publisher to task.

Against a real worker process (``celery worker --pool=solo``, tests/celery_app.py) on kombu's
filesystem transport, which needs no server; the worker reads the test database on the cluster.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from celery.app.task import Context
from django.db import connections
from pgcluster import Cluster

from dbrouting import causal, routing_scope
from dbrouting.context import blocks_var, current_state, read_after_lsn
from dbrouting.contrib import celery as contrib
from gists.models import Gist

from . import celery_app
from .conftest import replica_aliases, wait_for_replicas, wait_until
from .factories import make_gist
from .routing_helpers import as_another_client, pause_replay, ports, resume_replay

ROOT = Path(__file__).resolve().parent.parent
RESULT_TIMEOUT_S = 60.0


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def run(self, task: Any, *args: Any, headers: dict[str, str] | None = None) -> Any:
        """Publish ``task`` from the current routing scope; its result, once the worker has run it."""
        result = task.apply_async(args=args, headers=headers)
        wait_until(lambda: result.ready() or self.process.poll() is not None, RESULT_TIMEOUT_S, f"{task.name}")
        assert self.process.poll() is None, f"the worker exited:\n{self.log.read_text()[-4000:]}"
        return result.get(timeout=1, propagate=True)


@pytest.fixture(scope="module")
def worker(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    folder = tmp_path_factory.mktemp("celery")
    celery_app.configure(folder)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "PYTHONPATH": str(ROOT),
        celery_app.FOLDER_ENV: str(folder),
        celery_app.DATABASE_ENV: connections["default"].settings_dict["NAME"],
    }
    log = folder / "worker.log"
    argv = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "--pool=solo", "--concurrency=1"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Worker(process, log)
    finally:
        process.terminate()  # warm shutdown: the worker closes its database connections
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def ready_worker(worker: Worker, warm_health: None) -> Worker:
    """A gist on every node (a read reports its node's port), and a worker that finds every
    replica usable."""
    make_gist(title="anchor")
    every_ok = dict.fromkeys(replica_aliases(), "ok")
    wait_until(lambda: worker.run(celery_app.replica_states) == every_ok, what="the worker finds every replica usable")
    return worker


def node(port: int) -> str:
    return {p: alias for alias, p in ports().items()}[port]


def pause_every_replica(cluster: Cluster) -> None:
    for alias in replica_aliases():
        pause_replay(cluster, alias)


def create(title: str) -> Gist:
    return Gist.objects.create(title=title, content="c", latitude=0, longitude=0)


def test_task_published_after_a_write__reads_it_with_every_replica_paused(
    ready_worker: Worker, replay_control: Cluster
) -> None:
    pause_every_replica(replay_control)
    with routing_scope():  # the code that writes, then enqueues
        gist = create("for the task")
        result = ready_worker.run(celery_app.read_gist, gist.gist_id)
    assert not any(Gist.objects.using(a).filter(gist_id=gist.gist_id).exists() for a in replica_aliases())
    assert result["token"] is not None
    assert result["found"]
    assert node(result["port"]) == "default"


def test_task_published_without_a_write__has_no_token_and_reads_a_paused_replica(
    ready_worker: Worker, replay_control: Cluster
) -> None:
    pause_every_replica(replay_control)
    gist = as_another_client(lambda: create("not for the task"))  # another client's write
    assert not current_state().wrote  # the publishing scope
    result = ready_worker.run(celery_app.read_gist, gist.gist_id)
    assert result["token"] is None
    assert not result["found"]  # a stale read: what the header prevents
    assert node(result["port"]) in replica_aliases()


def test_token__replicas_serve_the_task_again_once_they_replayed_it(
    ready_worker: Worker, replay_control: Cluster
) -> None:
    pause_every_replica(replay_control)
    with routing_scope():
        gist = create("for the task")
        first = ready_worker.run(celery_app.read_gist, gist.gist_id)
    assert (node(first["port"]), first["found"]) == ("default", True)
    for alias in replica_aliases():
        resume_replay(replay_control, alias)
    wait_for_replicas()
    results = []

    def served_by_a_replica() -> bool:
        # The same token; the worker's health cache learns the replay positions within a round.
        results.append(ready_worker.run(celery_app.read_gist, gist.gist_id, headers={contrib.HEADER: first["token"]}))
        return node(results[-1]["port"]) in replica_aliases()

    wait_until(served_by_a_replica, what="a replica serves the task")
    assert all(r["found"] for r in results)


def test_worker__wrote_in_task_1_reads_a_replica_in_task_2(ready_worker: Worker) -> None:
    first = ready_worker.run(celery_app.write_gist, "by task 1")
    assert (node(first["port"]), first["found"]) == ("default", True)  # pinned within its own task
    wait_for_replicas()
    second = ready_worker.run(celery_app.read_gist, first["gist_id"])
    assert second["token"] is None
    assert second["found"]
    assert node(second["port"]) in replica_aliases()


def test_publish__from_a_scope_that_neither_wrote_nor_has_a_token__no_header() -> None:
    headers: dict[str, Any] = {}
    contrib.add_causal_token(headers=headers, sender="tests.fake")  # no database access here: no query
    assert headers == {}


@pytest.mark.usefixtures("live_db")
def test_publish__from_a_scope_with_a_token__carries_it_when_ahead_of_the_primary() -> None:
    ahead = causal.capture().lsn + 2**30
    for how in ("request's token", "read_after block"):
        headers: dict[str, Any] = {}
        with routing_scope():
            if how == "request's token":
                current_state().token_lsn = ahead
            with read_after_lsn(ahead if how == "read_after block" else None):
                contrib.add_causal_token(headers=headers, sender="tests.fake")
        assert causal.CausalToken.decode(headers[contrib.HEADER]).lsn == ahead, how


def fake_task(**headers: str) -> Any:
    return SimpleNamespace(name="tests.fake", request=Context({"id": "task-1", **headers}))


def test_prerun__malformed_token_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    outer = current_state()
    task = fake_task(**{contrib.HEADER: "not-a-token"})
    with caplog.at_level(logging.WARNING, logger="dbrouting"):
        contrib.enter_task_scope(task=task, sender=task)
    try:
        assert current_state() is not outer
        assert blocks_var.get().read_after is None
    finally:
        contrib.exit_task_scope(task=task, sender=task)
    assert current_state() is outer
    assert "tests.fake[task-1]: causal token ignored: malformed causal token" in caplog.text


def test_prerun_postrun__a_scope_reading_after_the_token_then_the_state_before() -> None:
    outer = current_state()
    token = causal.CausalToken(0x1_0000_0000, 0)
    task = fake_task(**{contrib.HEADER: token.encode()})
    contrib.enter_task_scope(task=task, sender=task)
    try:
        assert current_state() is not outer
        assert blocks_var.get().read_after == token.lsn
    finally:
        contrib.exit_task_scope(task=task, sender=task)
    assert current_state() is outer
    assert blocks_var.get().read_after is None


def test_app_without_celery__starts_and_connects_nothing() -> None:
    code = (
        "import sys; sys.modules['celery'] = None\n"  # as if not installed: find_spec() finds nothing
        "import django; django.setup()\n"
        "assert 'dbrouting.contrib.celery' not in sys.modules\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
