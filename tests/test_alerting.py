"""deploy/: the Prometheus rules (``promtool check rules``, ``promtool test rules``) and the Grafana
dashboard, and that every metric their queries use is one a live app really exports."""

from __future__ import annotations

import http.cookiejar
import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.db import connections
from pgcluster import Cluster
from prometheus_client.parser import text_string_to_metric_families

from .chaos_harness import BlackholeProxy, database_url, free_port, gunicorn
from .conftest import wait_until
from .routing_helpers import pause_replay
from .test_failover import terminate_app_sessions

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy/prometheus/dbrouting.rules.yml"
RULE_TESTS = ROOT / "deploy/prometheus/dbrouting.rules.test.yml"
DASHBOARD = ROOT / "deploy/grafana/dbrouting.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TARGET_LABELS = {"job", "instance"}  # Prometheus adds them when it scrapes: never in /metrics
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": "gists", "$instance": ".*"}


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return board


def panel_queries() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def variable_queries() -> list[str]:
    return [v["query"]["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]


# -- PromQL's metric names ------------------------------------------------------------------

IDENTIFIER = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")  # not inside a name, nor a number's exponent
SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(query: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana ``label_values(metric, label)``) reads:
    the identifiers left once strings, label matchers, ranges, Grafana variables and label lists
    are gone, but for keywords and functions (a name followed by a parenthesis)."""
    query = re.sub(r"label_values\(([^,]*),[^)]*\)", r"\1", query)
    query = re.sub(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]|\$\w+', " ", query)
    query = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", query)
    return {
        found.group()
        for found in IDENTIFIER.finditer(query)
        if found.group().lower() not in KEYWORDS and not query[found.end() :].lstrip().startswith("(")
    }


def unexported(queries: Iterable[str], exposition: str, recorded: set[str]) -> list[str]:
    """What ``queries`` read that the ``exposition`` (a scrape of /metrics) does not hold: metric
    names (but those ``recorded`` by the rules themselves), and in label matchers, label names
    and the values an ``=`` asks for (but the labels Prometheus adds)."""
    labels: dict[str, dict[str, set[str]]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:  # the names as queried: with _total, _bucket, _count, _sum
            seen = labels.setdefault(sample.name, {})
            for label, value in sample.labels.items():
                seen.setdefault(label, set()).add(value)
    problems = []
    for query in queries:
        missing = metric_names(query) - recorded - set(labels)
        problems += [f"{name}: not exported (in {query!r})" for name in sorted(missing)]
        for name, matchers in SELECTOR.findall(query):
            if name not in labels:  # recorded, or reported above
                continue
            for label, op, value in MATCHER.findall(matchers):
                if label in TARGET_LABELS:
                    continue
                if label not in labels[name]:
                    problems.append(f"{name}: no label {label!r} (in {query!r})")
                elif op == "=" and value not in labels[name][label]:
                    problems.append(f"{name}: no series with {label}={value!r} (in {query!r})")
    return problems


def test_metric_names__of_queries_are_found_and_a_misspelled_one_is_reported() -> None:
    bucket = 'dbrouting_probe_duration_seconds_bucket{job="$job"}[$__rate_interval]'
    quantile = f"histogram_quantile(0.99, sum by (alias, le) (rate({bucket})))"
    assert metric_names(quantile) == {"dbrouting_probe_duration_seconds_bucket"}
    joined = "a:b:c > on (job) group_left () min by (job) (x_total offset 5m) < +Inf and 1e3 > bool count(y) or 0"
    assert metric_names(joined) == {"a:b:c", "x_total", "y"}
    assert metric_names('label_values(dbrouting_primary_up{job="$job"}, instance)') == {"dbrouting_primary_up"}
    scrape = '# TYPE dbrouting_reads_total counter\ndbrouting_reads_total{alias="default",reason="pinned"} 1.0\n'
    share = 'sum(rate(dbrouting_reads_total{alias="default", job=~"$job"}[5m])) / a:b'
    assert unexported([share], scrape, {"a:b"}) == []
    assert unexported(["rate(dbrouting_read_total[5m])"], scrape, set()) == [
        "dbrouting_read_total: not exported (in 'rate(dbrouting_read_total[5m])')"
    ]
    assert unexported(['dbrouting_reads_total{reasn="pinned"}'], scrape, set()) == [
        "dbrouting_reads_total: no label 'reasn' (in 'dbrouting_reads_total{reasn=\"pinned\"}')"
    ]
    assert unexported(['dbrouting_reads_total{alias="defualt"}'], scrape, set()) == [
        "dbrouting_reads_total: no series with alias='defualt' (in 'dbrouting_reads_total{alias=\"defualt\"}')"
    ]


# -- the rules -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:  # never a skip: `make test` installs it
        pytest.fail("promtool not found: `bash scripts/system-packages.sh promtool:prometheus` installs it")
    return path


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=120, check=False)


def test_rules__pass_promtool_check(promtool: str) -> None:
    result = run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_rules__pass_their_promtool_unit_tests(promtool: str) -> None:
    result = run(promtool, "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert__waits_has_a_severity_and_words_and_cases_that_fire_and_stay_silent() -> None:
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert len(alerts) >= 6
    for name, rule in alerts.items():
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    assert {case["alertname"] for case in cases if case.get("exp_alerts")} == set(alerts), "an alert never fired"
    assert {case["alertname"] for case in cases if not case.get("exp_alerts")} == set(alerts), "never silent"


# -- the dashboard ----------------------------------------------------------------------------


def test_dashboard__reads_the_data_source_of_a_variable_and_nothing_from_outside() -> None:
    board = dashboard()
    [variable] = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert (variable["name"], variable["query"]) == ("datasource", "prometheus")
    for panel in board["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"]), panel["title"]
    for query in (v for v in board["templating"]["list"] if v["type"] == "query"):
        assert query["datasource"] == DATASOURCE, query["name"]
    assert not re.search(r"https?://|\.(png|svg|jpg|js|css)\b", DASHBOARD.read_text()), "an external asset"
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])


def test_dashboard__queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Each panel's query, its variables replaced, checked by promtool as a recording rule."""
    records = []
    for number, query in enumerate(panel_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, query
        records.append({"record": f"dashboard:query_{number}", "expr": query})
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


# -- against a live app -----------------------------------------------------------------------


@pytest.fixture
def replica1_proxy() -> Iterator[BlackholeProxy]:
    proxy = BlackholeProxy(int(connections["replica1"].settings_dict["PORT"]))
    yield proxy
    proxy.close()


@pytest.fixture
def app(live_db: None, replica1_proxy: BlackholeProxy, tmp_path: Path) -> Iterator[str]:
    """The app under gunicorn, /metrics through the multiprocess collector as in production, on the
    test database: replica1 behind a proxy, replica2, and a replica3 that is down (nobody listens)."""
    replicas = [connections[alias].settings_dict for alias in ("replica1", "replica2")]
    urls = [database_url(replicas[0], replica1_proxy.port), database_url(replicas[1])]
    env = {
        "DATABASE_URL": database_url(connections["default"].settings_dict),
        "DATABASE_REPLICA_URLS": ",".join([*urls, database_url(replicas[1], free_port())]),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    with gunicorn(env, workers=1, log_path=tmp_path / "gunicorn.log") as base:
        yield base


def test_every_metric_of_the_rules_and_the_dashboard__is_exported_by_a_live_app(
    app: str, replica1_proxy: BlackholeProxy, replay_control: Cluster, warm_health: None
) -> None:
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(path: str, body: dict[str, Any] | None = None) -> str:
        data = None if body is None else json.dumps(body).encode()
        sent = urllib.request.Request(f"{app}{path}", data, {"Content-Type": "application/json"})
        with browser.open(sent, timeout=10) as response:
            return response.read().decode()

    def series(name: str, **labels: str) -> float | None:
        """The value of the first series of ``name`` with these labels, in a new scrape."""
        samples = [s for f in text_string_to_metric_families(request("/metrics")) for s in f.samples]
        return next((s.value for s in samples if s.name == name and labels.items() <= s.labels.items()), None)

    def after_a_read(*wanted: tuple[str, dict[str, str]]) -> Callable[[], bool]:
        def check() -> bool:
            request("/api/gists/")
            return all(series(name, **labels) for name, labels in wanted)

        return check

    # The app's own prober: both replicas usable, replica3's probes failing.
    wait_until(
        lambda: (
            series("dbrouting_replica_usable", alias="replica1") == 1
            and series("dbrouting_replica_usable", alias="replica2") == 1
            and bool(series("dbrouting_probe_failures_total", alias="replica3"))
        ),
        what="the app's prober: replica1 and replica2 usable, replica3's probes failing",
    )
    # Reads on each replica (the worker adds its reads to the metric once a probe round).
    replica_reads = [("dbrouting_reads_total", {"alias": a, "reason": "replica"}) for a in ("replica1", "replica2")]
    wait_until(after_a_read(*replica_reads), what="reads on replica1 and replica2")
    # A fallback: replica1 refuses new connections (the proxy forwards them to a closed port; the
    # prober's open one goes on), and the app's open one is killed: its next read there fails over.
    replica1_proxy.target = ("127.0.0.1", free_port())
    terminate_app_sessions(replay_control, "replica1")
    wait_until(after_a_read(("dbrouting_fallbacks_total", {"alias": "replica1"})), what="a fallback from replica1")
    # A write, then a read that no replica can serve (replay paused): on the primary, for its token.
    pause_replay(replay_control, "replica1")
    pause_replay(replay_control, "replica2")
    request("/api/gists/", {"title": "alerting", "content": "c", "latitude": 1.0, "longitude": 2.0})
    primary_read = ("dbrouting_reads_total", {"alias": "default", "reason": "causal"})
    wait_until(after_a_read(primary_read), what="a read on the primary for the causal token")

    scrape = request("/metrics")
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    queries = [rule["expr"] for rule in rules()] + panel_queries() + variable_queries()
    assert unexported(queries, scrape, recorded) == []
    # And the dashboard shows every metric of the router.
    shown = set().union(*(metric_names(query) for query in panel_queries()))
    families = [f for f in text_string_to_metric_families(scrape) if f.name.startswith("dbrouting_")]
    assert [f.name for f in families if not shown & {s.name for s in f.samples}] == []
