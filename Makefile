# Two commands for a fresh machine: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SEED_COUNT ?= 10000

.PHONY: run test chaos bench bench-deps mutate mutate-cluster venv cluster-up cluster-down cluster-status cluster-destroy migrate seed lint pytest pytest-pgbouncer terraform-test

run: seed collectstatic  ## serve the app on 127.0.0.1:$(PORT) against the local primary and replicas
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

# STATIC_ROOT (staticfiles/), which WhiteNoise serves under gunicorn; runserver (DEBUG) serves the
# apps' own folders through WhiteNoise too, so the admin looks the same under both.
collectstatic: venv
	$(PY) manage.py collectstatic --noinput --verbosity 0

test: venv cluster-up lint terraform-test pytest pytest-pgbouncer  ## ruff, mypy, terraform checks, the whole pytest suite, its routing part through PgBouncer

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# Benchmark-only dependencies (django-multidb-router, matplotlib): never the app's.
$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $@

bench-deps: $(VENV)/.bench-installed

bench: venv bench-deps  ## bench/ on a cluster of its own (ports 25632-25634): figures, docs/benchmarks.md, docs/bench-*.png
	$(PY) bench/run_all.py

cluster-up:
	$(PYTHON) scripts/pgcluster.py up

cluster-down:
	$(PYTHON) scripts/pgcluster.py down

cluster-status:
	$(PYTHON) scripts/pgcluster.py status

cluster-destroy:
	$(PYTHON) scripts/pgcluster.py destroy

migrate: venv cluster-up
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_gists --count $(SEED_COUNT)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

pytest: venv bench-deps cluster-up chromium  ## bench-deps: tests/test_bench_smoke.py runs bench/ at a tiny size
	bash scripts/system-packages.sh promtool:prometheus
	$(VENV)/bin/pytest

.PHONY: collectstatic chromium e2e screenshots

# Debian's Chromium for the browser tests (tests/e2e/): Playwright's own browser download is not used.
chromium:
	bash scripts/system-packages.sh chromium:chromium

e2e: venv cluster-up chromium  ## the browser tests alone (make test runs them too)
	$(VENV)/bin/pytest tests/e2e

screenshots: venv cluster-up chromium  ## the browser tests, keeping their screenshots in docs/screenshots/
	E2E_SCREENSHOTS_DIR=docs/screenshots $(VENV)/bin/pytest tests/e2e

# Routing, lag, kill -9 fallback, hung nodes, causal tokens and the primary away, again with a
# real PgBouncer (transaction pooling) in front of every node: the README's advice, tested.
PGBOUNCER_TESTS := tests/test_pgbouncer.py tests/test_probe.py tests/test_router.py tests/test_causal.py \
	tests/test_outage.py tests/test_resilience.py tests/test_conventions.py
pytest-pgbouncer: venv
	bash scripts/system-packages.sh pgbouncer:pgbouncer
	PGCLUSTER_PGBOUNCER=1 $(PYTHON) scripts/pgcluster.py up
	PGCLUSTER_PGBOUNCER=1 $(VENV)/bin/pytest $(PGBOUNCER_TESTS)

terraform-test:  ## fmt, validate, terraform test, checkov, apply/destroy against moto (terraform/README.md)
	bash terraform/tests/run.sh

chaos: venv cluster-up  ## faults under load at full size, and the fuzzing; the totals are the last lines
	@rm -f .pgdata/chaos-totals.txt
	CHAOS_SECONDS=$${CHAOS_SECONDS:-20} CHAOS_CLIENTS=$${CHAOS_CLIENTS:-8} FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-3000} \
		CHAOS_PRIMARY_HOLD=$${CHAOS_PRIMARY_HOLD:-30} \
		CHAOS_TOTALS_FILE=.pgdata/chaos-totals.txt $(VENV)/bin/pytest -m "chaos or fuzz" -p no:randomly -q; \
		status=$$?; cat .pgdata/chaos-totals.txt 2>/dev/null; exit $$status

mutate: venv  ## mutation testing (mutmut) of the modules whose tests need no cluster: prints the score
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children 2 > /dev/null
	$(VENV)/bin/mutmut export-cicd-stats > /dev/null
	$(PY) scripts/mutation_score.py

# The router, health cache and probe: each mutant runs cluster tests, one at a time (hours for all;
# MUTANTS='dbrouting.router.x__all_behind*' for a sample). Resumable: results stay in .mutate-cluster/.
mutate-cluster: venv cluster-up  ## mutation testing of the modules whose tests need the cluster (slow)
	$(PY) scripts/mutate_cluster.py $(MUTANTS)
