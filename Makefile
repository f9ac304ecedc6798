# One command each on a fresh machine: `make demo`, `make test`. Both run `setup` first (idempotent).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.13 >/dev/null 2>&1 && python3.13 -c '' 2>/dev/null && echo python3.13 || ( [ -x /root/.pyenv/versions/3.13.0/bin/python3.13 ] && echo /root/.pyenv/versions/3.13.0/bin/python3.13 ) || echo python3)
VENV := .venv
SAMVENV := .venv-sam
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMSTAMP := $(SAMVENV)/.installed
CHECKOVVENV := .venv-checkov
CHECKOVSTAMP := $(CHECKOVVENV)/.installed
export AWS_SAM_CLI_TELEMETRY := 0
export PYTHONPATH := $(CURDIR)/layers/controlplane:$(CURDIR)
export SAM_CLI_TELEMETRY := 0

.PHONY: setup demo up test soak lint typecheck checks security unit integration e2e bench clean

# The three venvs are independent: installed side by side (pip's cache is shared safely).
setup:
	@$(MAKE) --no-print-directory -j3 --output-sync=target $(STAMP) $(SAMSTAMP) $(CHECKOVSTAMP)

$(STAMP): requirements/dev.txt layers/controlplane/requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	cd requirements && ../$(PY) -m pip install --quiet -r dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

$(SAMSTAMP): requirements/sam.txt
	test -x $(SAMVENV)/bin/python || $(PYTHON) -m venv $(SAMVENV)
	$(SAMVENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAMVENV)/bin/python -m pip install --quiet -r requirements/sam.txt
	touch $@

$(CHECKOVSTAMP): requirements/checkov.txt
	test -x $(CHECKOVVENV)/bin/python || $(PYTHON) -m venv $(CHECKOVVENV)
	$(CHECKOVVENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOVVENV)/bin/python -m pip install --quiet -r requirements/checkov.txt
	touch $@

demo: setup
	$(PY) -m local.demo

# The local cloud as a process on loopback (Ctrl-C stops it): prints the AWS endpoint; writes .local-cloud/env.sh
# (AWS profile, kubeconfig, stack outputs) so that aws --endpoint-url, kubectl and trialstudio talk to it.
# UP_ARGS e.g. "--first-release --acceleration 10".
up: setup
	$(PY) -m local up $(UP_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check layers local functions tests bench trialstudio
	$(VENV)/bin/mypy layers/controlplane/controlplane local trialstudio
	$(VENV)/bin/lint-imports

checks: setup
	$(VENV)/bin/cfn-lint template.yaml manifests/cloudformation/*.yaml
	PATH="$(abspath $(VENV))/bin:$$PATH" $(SAMVENV)/bin/sam validate --lint --template template.yaml --region us-east-1
	PATH="$(abspath $(VENV))/bin:$$PATH" $(SAMVENV)/bin/sam build --template template.yaml --build-dir .aws-sam/build > .aws-sam-build.log 2>&1 || (cat .aws-sam-build.log; exit 1)

# checkov on the templates and the rendered manifests; findings not accepted in README.md "## Security" fail it.
security: setup
	$(PY) -m pytest -q -p no:randomly tests/unit/test_checkov.py

# lint and checks side by side (each is mostly one process), then the tests on both cores.
test: setup
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint checks
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=25

# Long property runs: the soak-marked tests with the "soak" hypothesis profile (hundreds of examples each).
soak: setup
	HYPOTHESIS_PROFILE=soak $(PY) -m pytest -q -n 2 --dist worksteal -m soak --durations=10

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(SAMVENV) $(CHECKOVVENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
