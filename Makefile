# One command each on a fresh machine: `make demo`, `make test`. Both run `setup` first (idempotent).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.13 >/dev/null 2>&1 && python3.13 -c '' 2>/dev/null && echo python3.13 || ( [ -x /root/.pyenv/versions/3.13.0/bin/python3.13 ] && echo /root/.pyenv/versions/3.13.0/bin/python3.13 ) || echo python3)
VENV := .venv
SAMVENV := .venv-sam
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMSTAMP := $(SAMVENV)/.installed
export AWS_SAM_CLI_TELEMETRY := 0
export PYTHONPATH := $(CURDIR)/layers/controlplane:$(CURDIR)
export SAM_CLI_TELEMETRY := 0

.PHONY: setup demo test lint typecheck checks unit integration e2e bench clean

setup: $(STAMP) $(SAMSTAMP)

$(STAMP): requirements/dev.txt layers/controlplane/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	cd requirements && ../$(PY) -m pip install --quiet -r dev.txt
	touch $@

$(SAMSTAMP): requirements/sam.txt
	test -x $(SAMVENV)/bin/python || $(PYTHON) -m venv $(SAMVENV)
	$(SAMVENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAMVENV)/bin/python -m pip install --quiet -r requirements/sam.txt
	touch $@

demo: setup
	$(PY) -m local.demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check layers local functions tests bench
	$(VENV)/bin/mypy layers/controlplane/controlplane local
	$(VENV)/bin/lint-imports

checks: setup
	$(VENV)/bin/cfn-lint template.yaml manifests/cloudformation/*.yaml
	PATH="$(abspath $(VENV))/bin:$$PATH" $(SAMVENV)/bin/sam validate --lint --template template.yaml --region us-east-1
	PATH="$(abspath $(VENV))/bin:$$PATH" $(SAMVENV)/bin/sam build --template template.yaml --build-dir .aws-sam/build > .aws-sam-build.log 2>&1 || (cat .aws-sam-build.log; exit 1)

test: setup lint checks
	$(PY) -m pytest -q -n 2

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(SAMVENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
