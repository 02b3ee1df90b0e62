"""The sides of a comparison that need settings of their own: the same script again, in a child
process, driven over its stdin/stdout with one JSON object a line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench.common import ROOT


class Side:
    """The other side of a comparison: this script again, in a process of its own (own settings),
    driven over its stdin/stdout with one JSON object a line (see :func:`serve`)."""

    def __init__(self, script: str, name: str, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.name = name
        command = [sys.executable, script, "--side", name, *args.forward]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **env}, cwd=ROOT
        )
        self.call("ping")

    def call(self, op: str, **params: Any) -> Any:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **params}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"bench: side {self.name} exited (code {self.proc.wait()}); see its stderr above")
        return json.loads(line)["result"]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("exit")
        self.proc.wait(timeout=30)


def serve(handlers: dict[str, Callable[..., Any]]) -> None:
    """A side's loop: run what the parent asks, answer on stdout (nothing else may print there)."""
    protocol = sys.stdout
    sys.stdout = sys.stderr
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        result = None if op in ("ping", "exit") else handlers[op](**request)
        protocol.write(json.dumps({"result": result}) + "\n")
        protocol.flush()
        if op == "exit":
            break
