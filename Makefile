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
# pytest-xdist workers of make test (the Ray tests share one: tests/conftest.py); TEST_WORKERS=0 runs all in one process.
TEST_WORKERS ?= 2
PIPENV_VERSION := 2026.10.3
VENV := .venv
CDKTF := node_modules/.bin/cdktf
# Deploy order, from stacks/contract.py (expanded when a recipe runs, after the venv exists).
STACK_ORDER = $(shell $(VENV)/bin/python -c 'from stacks.contract import STACK_ORDER; print(*STACK_ORDER)' 2>/dev/null)
# `make deploy|diff|destroy STACKS=infra` runs those stacks only (comma-separated); all of them by default.
STACKS ?=
# The Ray client of `make submit` (scripts/client_env.py): ray[default] at the cluster's Ray version, nothing else.
CLIENT_VENV := build/ray-client

.PHONY: lint
.PHONY: help synth test deps deps-test tools node bench-synth bench-pipeline deploy destroy diff \
        dashboard token submit job-yaml image clean checkov-env security-scan diagram graphviz pipeline preflight \
        lock-requirements update-base-digests prometheus grafana tunnel tunnel-close kubeconfig client state-move

help:
	@echo "make synth    synthesize all stacks into cdktf.out/ (default config, local backend)"
	@echo "make test     run the whole test suite (installs everything it needs)"
	@echo "make preflight  before the first deploy: credentials, API access, quotas, instance types, add-on configuration"
	@echo "make deploy | diff | destroy   terraform, stacks in order: $(STACK_ORDER) (STACKS=infra: only those)"
	@echo "make state-move   move this deployment's state from the paths of older releases (docs/deploy.md)"
	@echo "make tunnel | tunnel-close   open/close the port-forward to the private Kubernetes API (endpoint_access tunnel)"
	@echo "make kubeconfig   point kubectl at the cluster (through the tunnel when there is one)"
	@echo "make client   install the Ray client (ray[default] at the cluster's Ray version) that make submit uses"
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

# main.py directly (what `cdktf synth` runs): its one-line errors and warnings reach you as they are.
synth: deps
	$(VENV)/bin/python main.py

test: deps-test checkov-env graphviz prometheus lint
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup tests

# checkov over every synthesized stack, with our inline (//) skips applied (see docs/security.md)
security-scan: synth checkov-env
	$(VENV)/bin/python tools/checkov/scan.py

bench-synth: deps
	$(VENV)/bin/python benchmarks/synth.py

bench-pipeline: deps-test
	$(VENV)/bin/python benchmarks/input_pipeline.py

# --- deploy (see docs/deploy.md): plain terraform on the synthesized stacks (scripts/deploy.py): credentials first,
# then a synth, then infra -> ray -> ray-cluster (destroy: the reverse), each stack's Terraform data kept per deployment
# in build/terraform/<name>/<region>/, and with cluster.endpoint_access tunnel the ray stacks through `make tunnel`.
# Asks AWS (the CLI, your credentials) whether the account takes the deployment: quotas, instance types, API access,
# add-on configuration; prints what to request when it does not (scripts/preflight.py).
preflight: $(VENV)/.synced-preflight
	$(VENV)/bin/python -m scripts.preflight

deploy: deps
	@$(VENV)/bin/python -m scripts.deploy deploy $(if $(STACKS),--stacks $(STACKS))

diff: deps
	@$(VENV)/bin/python -m scripts.deploy diff $(if $(STACKS),--stacks $(STACKS))

destroy: deps
	@$(VENV)/bin/python -m scripts.deploy destroy $(if $(STACKS),--stacks $(STACKS))

state-move: deps
	@$(VENV)/bin/python -m scripts.state move

# --- using the cluster (after deploy). Each target checks what it needs first and says what to do in one line
# (scripts/ray_commands.py, scripts/tunnel.py, scripts/grafana.py; the cluster checks they share:
# scripts/cluster_access.py); the commands come from the config's names and training.args; JOB_ARGS="..." replaces
# the job's arguments. A failure is the target's exit status.
tunnel: deps
	@$(VENV)/bin/python -m scripts.tunnel open

tunnel-close: deps
	@$(VENV)/bin/python -m scripts.tunnel close

kubeconfig: deps
	@$(VENV)/bin/python -m scripts.tunnel kubeconfig

client: deps
	@$(VENV)/bin/python -m scripts.client_env $(CLIENT_VENV)

dashboard: deps
	@c="$$($(VENV)/bin/python -m scripts.ray_commands dashboard)" || exit $$?; eval "$$c"

token: deps
	@c="$$($(VENV)/bin/python -m scripts.ray_commands token)" || exit $$?; eval "$$c" && echo

# The Ray client is build/ray-client's (installed on first use, after the cluster checks pass).
submit: deps
	@export PATH="$(CURDIR)/$(CLIENT_VENV)/bin:$$PATH"; \
	  c="$$($(VENV)/bin/python -m scripts.ray_commands submit $(JOB_ARGS))" || exit $$?; set -e; eval "$$c"

pipeline: deps
	@c="$$($(VENV)/bin/python -m scripts.ray_commands pipeline)" || exit $$?; eval "$$c"

# Grafana of kube-prometheus-stack on http://localhost:3000 (the Ray dashboard embeds its panels from there): the
# login comes from Grafana's Secret at run time (scripts/grafana.py), never from Terraform state or outputs.
grafana: deps
	@$(VENV)/bin/python -m scripts.grafana

job-yaml: deps
	@$(VENV)/bin/python -m scripts.render_jobs --out rendered

image: deps
	@o="$$($(VENV)/bin/python -m scripts.infra_outputs ecr_repository_url region)" || exit $$?; eval "$$o"; \
	  ECR_REPOSITORY_URL="$$ECR_REPOSITORY_URL" REGION="$$REGION" training/build_and_push_image.sh

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

clean:
	rm -rf cdktf.out build rendered .pytest_cache
