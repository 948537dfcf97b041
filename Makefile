# Everything a fresh machine needs: `make synth` and `make test` install what they use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export CHECKPOINT_DISABLE := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1
export PIPENV_NOSPIN := 1
export RAY_USAGE_STATS_ENABLED := 0
# Use a local provider mirror when the machine has one (offline CI); plain registry downloads elsewhere.
TF_RC := $(shell scripts/terraformrc.sh build/terraformrc)
ifneq ($(TF_RC),)
export TF_CLI_CONFIG_FILE := $(TF_RC)
endif

PYTHON ?= python3
PIPENV_VERSION := 2026.10.3
VENV := .venv
CDKTF := node_modules/.bin/cdktf
# Deploy order, from stacks/contract.py (expanded when a recipe runs, after the venv exists).
STACKS = $(shell $(VENV)/bin/python -c 'from stacks.contract import STACK_ORDER; print(*STACK_ORDER)' 2>/dev/null)

.PHONY: lint
.PHONY: help synth test deps deps-test tools node bench-synth bench-pipeline deploy destroy diff \
        dashboard token submit job-yaml image clean checkov-env security-scan diagram graphviz pipeline preflight \
        lock-requirements update-base-digests prometheus grafana

help:
	@echo "make synth    synthesize all stacks into cdktf.out/ (default config, local backend)"
	@echo "make test     run the whole test suite (installs everything it needs)"
	@echo "make preflight  before the first deploy: AWS reachable, EC2 vCPU and Elastic IP quotas, add-on configuration (AWS CLI)"
	@echo "make deploy | diff | destroy   cdktf CLI, stacks in order: $(STACKS)"
	@echo "make dashboard | token | submit   port-forward the Ray dashboard / print its token / submit the training job"
	@echo "make job-yaml  render the in-cluster submitter Job and the RayJob to rendered/*.yaml"
	@echo "make image    build training/Dockerfile with local Docker and push it to the stack's ECR repository"
	@echo "              (the deploy builds it in CodeBuild by default: ray.image.source build)"
	@echo "make bench-synth | bench-pipeline   benchmarks"
	@echo "make security-scan   checkov over the synthesized stacks (inline skips applied)"
	@echo "make diagram  draw docs/architecture.png from the synthesized stacks (diagrams + Graphviz, installed if missing)"
	@echo "make lock-requirements   regenerate training/requirements.lock (hashes) after editing training/requirements.txt"
	@echo "make update-base-digests record the digests of the rayproject/ray base images in config/image_digests.json"
	@echo "make pipeline start the Step Functions training -> inference pipeline (after deploy)"
	@echo "make grafana  port-forward Grafana (observability.kube_prometheus_stack) and print how to log in"

tools:
	@command -v pipenv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "pipenv==$(PIPENV_VERSION)"

# synth needs only the default category; the diagram and preflight add their own; the test suite takes them all.
$(VENV)/.synced-default: Pipfile.lock | tools
	pipenv sync --categories "packages"
	@touch $@
$(VENV)/.synced-diagram: Pipfile.lock | tools
	pipenv sync --categories "packages diagram"
	@touch $@ $(VENV)/.synced-default
$(VENV)/.synced-preflight: Pipfile.lock | tools
	pipenv sync --categories "packages preflight"
	@touch $@ $(VENV)/.synced-default
$(VENV)/.synced-lock: Pipfile.lock | tools
	pipenv sync --categories "packages lock"
	@touch $@ $(VENV)/.synced-default
$(VENV)/.synced-all: Pipfile.lock | tools
	pipenv sync --categories "packages dev-packages training diagram preflight"
	@touch $@ $(VENV)/.synced-default $(VENV)/.synced-diagram $(VENV)/.synced-preflight

# Graphviz's `dot` (a system package, not a Python one) lays out the architecture diagram: make diagram and the
# test suite (tests/scripts/test_diagram.py renders it) install it when it is missing.
SUDO := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && echo sudo)
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "Graphviz (dot) is missing: apt-get install graphviz"; \
	    $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	  else \
	    echo "error: Graphviz (the dot command) is missing and there is no apt-get here: install it (https://graphviz.org/download/)" >&2; \
	    exit 1; \
	  fi; \
	  command -v dot >/dev/null 2>&1 || { echo "error: installing Graphviz did not provide dot" >&2; exit 1; }; }

# Prometheus and promtool (Debian's package): the test suite runs a real Prometheus against a local Ray head and
# checks the alert rules with promtool (tests/observability); installed when missing, like Graphviz.
prometheus:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "Prometheus (prometheus, promtool) is missing: apt-get install prometheus"; \
	    $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  else \
	    echo "error: prometheus and promtool are missing and there is no apt-get here: install Prometheus (https://prometheus.io/download/)" >&2; \
	    exit 1; \
	  fi; \
	  command -v promtool >/dev/null 2>&1 || { echo "error: installing prometheus did not provide promtool" >&2; exit 1; }; }

CHECKOV_VENV := tools/checkov/.venv

# checkov lives in its own environment (its pins clash with the app's); tests/security runs it.
$(CHECKOV_VENV)/.synced: tools/checkov/Pipfile.lock | tools
	cd tools/checkov && PIPENV_IGNORE_VIRTUALENVS=1 pipenv sync
	@touch $@

checkov-env: $(CHECKOV_VENV)/.synced

LINT_VENV := tools/lint/.venv

# ruff and mypy live in their own environment too; mypy reads the app's packages through its interpreter.
$(LINT_VENV)/.synced: tools/lint/Pipfile.lock | tools
	cd tools/lint && PIPENV_IGNORE_VIRTUALENVS=1 pipenv sync
	@touch $@

lint: $(LINT_VENV)/.synced $(VENV)/.synced-all
	$(LINT_VENV)/bin/ruff check .
	$(LINT_VENV)/bin/mypy --python-executable $(VENV)/bin/python

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: $(VENV)/.synced-default node_modules/.installed
deps-test: $(VENV)/.synced-all node_modules/.installed

synth: deps
	$(CDKTF) synth --output cdktf.out

test: deps-test checkov-env graphviz prometheus lint
	$(VENV)/bin/python -m pytest tests

# checkov over every synthesized stack, with our inline (//) skips applied (see docs/security.md)
security-scan: synth checkov-env
	$(VENV)/bin/python tools/checkov/scan.py

bench-synth: deps
	$(VENV)/bin/python benchmarks/synth.py

bench-pipeline: deps-test
	$(VENV)/bin/python benchmarks/input_pipeline.py

# --- deploy (see docs/deploy.md). The stacks declare their order (add_dependency): deploy runs
# infra -> ray -> ray-cluster, destroy the reverse. `cdktf diff` takes one stack per call. With a
# provider mirror (offline) `terraform providers lock` cannot reach the registry: skip it.
# Asks AWS (the CLI, your credentials) whether the account's quotas hold the config's node groups and NAT
# gateways; prints the quota increase requests when they do not (scripts/preflight.py).
preflight: $(VENV)/.synced-preflight
	$(VENV)/bin/python -m scripts.preflight

deploy: deps
	$(CDKTF) deploy --auto-approve $(if $(TF_RC),--skip-provider-lock) $(STACKS)

diff: deps
	@for s in $(STACKS); do $(CDKTF) diff $(if $(TF_RC),--skip-provider-lock) $$s || exit $$?; done

destroy: deps
	$(CDKTF) destroy --auto-approve $(if $(TF_RC),--skip-provider-lock) $(STACKS)

# --- using the cluster (after deploy): reach the dashboard, print its token, submit the training job. The commands
# come from scripts/ray_commands.py (the config's names and training.args); JOB_ARGS="..." replaces the arguments.
dashboard: deps
	eval "$$($(VENV)/bin/python -m scripts.ray_commands dashboard)"

token: deps
	@eval "$$($(VENV)/bin/python -m scripts.ray_commands token)"; echo

submit: $(VENV)/.synced-all
	export PATH="$(CURDIR)/$(VENV)/bin:$$PATH"; eval "$$($(VENV)/bin/python -m scripts.ray_commands submit $(JOB_ARGS))"

# Grafana of kube-prometheus-stack on http://localhost:3000 (the Ray dashboard embeds its panels from there): the
# login comes from Grafana's Secret at run time (scripts/grafana.py), never from Terraform state or outputs.
grafana: deps
	$(VENV)/bin/python -m scripts.grafana

job-yaml: deps
	$(VENV)/bin/python -m scripts.render_jobs --out rendered

image:
	training/build_and_push_image.sh

# What the image build installs and builds from, pinned by content (docs/security.md, "Images").
lock-requirements: $(VENV)/.synced-lock
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m scripts.lock_requirements
update-base-digests: $(VENV)/.synced-default
	$(VENV)/bin/python -m scripts.update_base_digests

# The README's picture, from the default config's synth. DIAGRAM_SYNTH/DIAGRAM_OUT draw another synth elsewhere.
DIAGRAM_SYNTH ?= cdktf.out
DIAGRAM_OUT ?= docs/architecture.png
diagram: synth $(VENV)/.synced-diagram graphviz
	$(VENV)/bin/python -m scripts.diagram --synth-dir $(DIAGRAM_SYNTH) --out $(DIAGRAM_OUT)

pipeline:
	eval "$$(terraform -chdir=cdktf.out/stacks/ray output -raw start_execution_command)"

clean:
	rm -rf cdktf.out build rendered .pytest_cache
