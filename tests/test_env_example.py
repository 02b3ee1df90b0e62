"""`.env.example` documents every variable the settings read, and copied as is changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READERS = re.compile(
    r"""(?:env(?:\.[a-z_]+)?|env_number\(env,|os\.environ\.get|os\.getenv)\(?\s*"([A-Z][A-Z0-9_]+)\""""
)


def variables_read() -> set[str]:
    sources = [*ROOT.glob("config/**/*.py"), ROOT / "scripts" / "pgcluster.py", ROOT / "tests" / "test_cluster.py"]
    return {name for path in sources for name in READERS.findall(path.read_text())}


def test_env_example__documents_every_variable_the_settings_read() -> None:
    documented = set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    read = variables_read()
    assert {"DATABASE_URL", "DB_CONNECT_TIMEOUT", "DBROUTING_MAX_STALENESS_SECONDS", "PGCLUSTER_TEST_PORT_BASE"} <= read
    assert read - documented == set()


def test_env_example__copied_as_is_sets_nothing() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    assert [line for line in lines if line.strip() and not line.startswith("#")] == []
