"""Browser tests (marker ``e2e``): Debian's Chromium, driven by Playwright, against the app as
production serves it: gunicorn (``config/gunicorn.conf.py``) with the production settings, its
static files collected into a temporary ``STATIC_ROOT`` and served by WhiteNoise, on the suite's
cluster and test database (the replicas read it under the same name, see ``tests/conftest.py``).

Screenshots are taken every run into a temporary folder, and copied into ``E2E_SCREENSHOTS_DIR``
when it is set (``make screenshots``: docs/screenshots/).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Page

from ..chaos_harness import ROOT, database_url, free_port, gunicorn, serve
from ..conftest import replica_aliases

# Debian's Chromium (`make chromium` installs it): Playwright's own browser download is not used.
CHROMIUM = Path("/usr/bin/chromium")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run last: once Playwright's sync API has started, Django sees an event
    loop running in this thread for the rest of the session (below)."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


@pytest.fixture(autouse=True)
def _django_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """With Playwright's loop marked running in this thread, Django refuses the ORM calls that set
    up data (pytest-django's advice for Playwright: DJANGO_ALLOW_ASYNC_UNSAFE), and keeps the
    connections opened meanwhile per context, apart from those the test database's teardown
    closes: they are closed here, after each test (else they keep that database from being dropped)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    yield
    for alias in connections:
        connections[alias].close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, object]) -> dict[str, object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's package")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM)}


@pytest.fixture(scope="session")
def server_env(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The production settings, on the test database (primary and replicas)."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": database_url(connections["default"].settings_dict),
        "DATABASE_REPLICA_URLS": ",".join(database_url(connections[a].settings_dict) for a in replica_aliases()),
        "STATIC_ROOT": str(tmp_path_factory.mktemp("static")),
        # Plain HTTP on the loopback: cookies without the Secure flag that production sets behind TLS.
        "SESSION_COOKIE_SECURE": "false",
        "SECURE_SSL_REDIRECT": "false",
        "RATELIMIT_ENABLE": "true",
        "METRICS_TOKEN": secrets.token_urlsafe(32),  # production's limits (the harness turns them off for load)
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CSRF_COOKIE_SECURE": "false",
        "DBROUTING_CHECK_INTERVAL_SECONDS": "0.2",
    }


@pytest.fixture(scope="session")
def base_url(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app under gunicorn after ``collectstatic``, as a deploy runs them; Playwright's pages
    resolve relative URLs against it."""
    manage = [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"]
    subprocess.run(manage, cwd=ROOT, env={**os.environ, **server_env}, check=True)
    with gunicorn(server_env, workers=2, log_path=tmp_path_factory.mktemp("gunicorn") / "gunicorn.log") as url:
        yield url


@pytest.fixture
def runserver_url(server_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The same app under ``manage.py runserver`` as ``make run`` starts it (development settings,
    DEBUG), on the same databases."""
    port = free_port()
    env = {**server_env, "DJANGO_SETTINGS_MODULE": "config.settings.local", "DEBUG": "true"}
    command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    with serve(command, env, port, log_path=tmp_path / "runserver.log") as url:
        yield url


@pytest.fixture(scope="session")
def screenshot(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Page, str], Path]:
    """``screenshot(page, name)``: the page as shown, as ``name``.png, in a temporary folder, and
    in ``E2E_SCREENSHOTS_DIR`` too when set."""
    folder = tmp_path_factory.mktemp("screenshots")
    published = os.environ.get("E2E_SCREENSHOTS_DIR")

    def take(page: Page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=path, animations="disabled")
        assert path.read_bytes().startswith(PNG_SIGNATURE), path
        if published:
            Path(published).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(published) / path.name)
        return path

    return take


_durations: list[float] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each phase of each browser test (this folder's only), the session's set-up included."""
    _durations.append(report.duration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _durations:
        terminalreporter.write_line(f"e2e browser suite: {sum(_durations):.1f} s (set-up, tests and tear-down)")
