"""``make mutate-cluster``: mutation testing of the modules whose tests need the local cluster.

``make mutate`` covers the modules whose tests run in seconds. The router, the health cache, the
probe and the probe rounds are only tested for real against PostgreSQL, so each of their mutants
runs tests that create the test database and pause replicas: hours for every mutant, not seconds.
This runs mutmut over them with that slower configuration, one mutant at a time (the tests pause
and resume replay on the one shared cluster, so two at once would disturb each other).

mutmut reads its configuration from ``pyproject.toml`` in the directory it runs in, so the run
happens in a copy of the project (``.mutate-cluster/``, ignored by git) whose ``[tool.mutmut]``
names these modules and tests. The copy keeps mutmut's results between runs: stop it with Ctrl-C
and run it again, and only the mutants without a result (or whose function changed) run.

    make mutate-cluster                                   # every mutant: hours
    make mutate-cluster MUTANTS='dbrouting.router.x__all_behind*'   # a sample: minutes

Standard library only; the tests use the cluster of ``make cluster-up`` (PGCLUSTER_PORT_BASE) and
its test database: not at the same time as ``make test`` on the same cluster (give one of them
another PGCLUSTER_PORT_BASE and PGCLUSTER_DIR).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
WORK = PROJECT / ".mutate-cluster"
SOURCES = ["dbrouting/router.py", "dbrouting/health.py", "dbrouting/probe.py", "dbrouting/rounds.py"]
TESTS = ["tests/test_router.py", "tests/test_probe.py", "tests/test_health_cache.py", "tests/test_all_behind.py"]
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv*",
    ".pgdata",
    "mutants",
    ".mutate-cluster",
    "*_cache",
    "__pycache__",
    ".terraform*",
    ".hypothesis",
    "staticfiles",
)


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def configure(pyproject: str) -> str:
    """``pyproject.toml`` with its ``[tool.mutmut]`` table replaced by this run's."""
    table = "\n".join(
        [
            "[tool.mutmut]",
            f"source_paths = {_toml_list(SOURCES)}",
            'also_copy = ["config", "gists", "tests", "scripts", "manage.py", "dbrouting", "bench"]',
            f"pytest_add_cli_args_test_selection = {_toml_list(TESTS)}",
            'pytest_add_cli_args = ["-p", "no:randomly", "-q", "-x"]',
            "",
        ]
    )
    replaced, count = re.subn(r"^\[tool\.mutmut\]\n(?:(?!\[).*\n)*", table, pyproject, flags=re.MULTILINE)
    if count != 1:
        raise SystemExit("mutate_cluster: pyproject.toml has no single [tool.mutmut] table to replace")
    return replaced


def main() -> int:
    shutil.copytree(PROJECT, WORK, ignore=NOT_COPIED, dirs_exist_ok=True)
    (WORK / "pyproject.toml").write_text(configure((PROJECT / "pyproject.toml").read_text()))
    mutmut = str(PROJECT / ".venv" / "bin" / "mutmut")
    # The copy's tests use the project's cluster (its data folder), not one of their own.
    env = {**os.environ, "PGCLUSTER_DIR": os.environ.get("PGCLUSTER_DIR", str(PROJECT / ".pgdata"))}
    patterns = sys.argv[1:]
    print(f"mutate-cluster: {', '.join(SOURCES)} against {', '.join(TESTS)}; results kept in {WORK.name}/")
    run = subprocess.run([mutmut, "run", "--max-children", "1", *patterns], cwd=WORK, env=env)
    if run.returncode not in (0, 1):  # 1: interrupted with results saved so far
        return run.returncode
    subprocess.run([mutmut, "export-cicd-stats"], cwd=WORK, env=env, check=True, stdout=subprocess.DEVNULL)
    score = subprocess.run([sys.executable, str(PROJECT / "scripts" / "mutation_score.py"), "--sample"], cwd=WORK)
    print(f"(mutmut's commands for these results run in {WORK.name}/: cd {WORK.name} && ../.venv/bin/mutmut results)")
    return score.returncode


if __name__ == "__main__":
    raise SystemExit(main())
