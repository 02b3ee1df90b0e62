"""Celery task workers: a routing scope per task, and read-your-writes from publisher to task.

Connected by ``DbRoutingConfig.ready()`` when Celery is installed; nothing to configure.

- Each task runs in a ``routing_scope()`` of its own: one replica for the task, and a write pins
  only the rest of that task's reads to the primary.
- A task published from a scope that wrote, or that reads after a causal token (a request's, a
  task's own), carries a causal token in its message headers; the task's reads then go only to
  replicas that have replayed it, and to the primary while none has. Publish after the commit
  (``transaction.on_commit``): a token taken inside a transaction does not cover its writes.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any

from celery import signals
from django.db import DatabaseError

from ..causal import capture, read_after
from ..context import blocks_var, current_state, routing_scope
from ..exceptions import InvalidToken

logger = logging.getLogger("dbrouting")

HEADER = "dbrouting_causal"
_BLOCKS = "dbrouting_blocks"  # the task request's attribute holding the blocks entered for it


def add_causal_token(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """``before_task_publish``: the primary's position now (or the scope's own token, if further),
    so that the task sees what the publisher wrote or had to see."""
    state = current_state()
    positions = [p for p in (state.token_lsn, blocks_var.get().read_after) if p is not None]
    if headers is None or not (state.wrote or positions):
        return
    try:
        headers[HEADER] = capture(at_least=max(positions, default=None)).encode()
    except DatabaseError as exc:
        logger.warning("task %s published without a causal token: %s", kwargs.get("sender"), exc)


def enter_task_scope(task: Any, **kwargs: Any) -> None:
    """``task_prerun``: a fresh routing scope, reading after the message's causal token if any."""
    with ExitStack() as blocks:  # whatever was entered is exited if this does not complete
        blocks.enter_context(routing_scope())
        token = task.request.get(HEADER)
        if token is not None:
            try:
                blocks.enter_context(read_after(token))
            except InvalidToken as exc:
                logger.warning("task %s[%s]: causal token ignored: %s", task.name, task.request.id, exc)
        setattr(task.request, _BLOCKS, blocks.pop_all())


def exit_task_scope(task: Any, **kwargs: Any) -> None:
    """``task_postrun``: exit the task's routing blocks in the reverse order of entry."""
    blocks: ExitStack | None = getattr(task.request, _BLOCKS, None)
    if blocks is not None:
        setattr(task.request, _BLOCKS, None)
        blocks.close()


def connect() -> None:
    """Connect the receivers (idempotent: each has a ``dispatch_uid``)."""
    signals.before_task_publish.connect(add_causal_token, dispatch_uid="dbrouting.celery.publish")
    signals.task_prerun.connect(enter_task_scope, dispatch_uid="dbrouting.celery.prerun")
    signals.task_postrun.connect(exit_task_scope, dispatch_uid="dbrouting.celery.postrun")
