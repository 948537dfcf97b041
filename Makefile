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

.PHONY: help synth test deps deps-test tools node bench-synth bench-pipeline deploy destroy diff \
        dashboard submit job-yaml image clean checkov-env security-scan diagram pipeline

help:
	@echo "make synth    synthesize all stacks into cdktf.out/ (default config, local backend)"
	@echo "make test     run the whole test suite (installs everything it needs)"
	@echo "make deploy | diff | destroy   cdktf CLI, stacks in order: $(STACKS)"
	@echo "make dashboard | submit        port-forward the Ray dashboard / submit the training job"
	@echo "make job-yaml  render the in-cluster submitter Job and the RayJob to rendered/*.yaml"
	@echo "make image    build and push the custom Ray image to the stack's ECR repository"
	@echo "make bench-synth | bench-pipeline   benchmarks"
	@echo "make security-scan   checkov over the synthesized stacks (inline skips applied)"
	@echo "make diagram  render docs/architecture.svg (+ .png) from the synthesized stacks"
	@echo "make pipeline start the Step Functions training -> inference pipeline (after deploy)"

tools:
	@command -v pipenv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "pipenv==$(PIPENV_VERSION)"

# synth needs only the default category; the test suite adds dev-packages and training.
$(VENV)/.synced-default: Pipfile.lock | tools
	pipenv sync --categories "packages"
	@touch $@
$(VENV)/.synced-all: Pipfile.lock | tools
	pipenv sync --categories "packages dev-packages training"
	@touch $@ $(VENV)/.synced-default

CHECKOV_VENV := tools/checkov/.venv

# checkov lives in its own environment (its pins clash with the app's); tests/security runs it.
$(CHECKOV_VENV)/.synced: tools/checkov/Pipfile.lock | tools
	cd tools/checkov && PIPENV_IGNORE_VIRTUALENVS=1 pipenv sync
	@touch $@

checkov-env: $(CHECKOV_VENV)/.synced

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: $(VENV)/.synced-default node_modules/.installed
deps-test: $(VENV)/.synced-all node_modules/.installed

synth: deps
	$(CDKTF) synth --output cdktf.out

test: deps-test checkov-env
	$(VENV)/bin/python -m pytest tests

# checkov over every synthesized stack, with our inline (//) skips applied (see README "Security")
security-scan: synth checkov-env
	$(VENV)/bin/python tools/checkov/scan.py

bench-synth: deps
	$(VENV)/bin/python benchmarks/synth.py

bench-pipeline: deps-test
	$(VENV)/bin/python benchmarks/input_pipeline.py

# --- deploy (see README "Deploy"). The stacks declare their order (add_dependency): deploy runs
# infra -> ray -> ray-cluster, destroy the reverse. `cdktf diff` takes one stack per call. With a
# provider mirror (offline) `terraform providers lock` cannot reach the registry: skip it.
deploy: deps
	$(CDKTF) deploy --auto-approve $(if $(TF_RC),--skip-provider-lock) $(STACKS)

diff: deps
	@for s in $(STACKS); do $(CDKTF) diff $(if $(TF_RC),--skip-provider-lock) $$s || exit $$?; done

destroy: deps
	$(CDKTF) destroy --auto-approve $(if $(TF_RC),--skip-provider-lock) $(STACKS)

# --- using the cluster (after deploy): reach the dashboard, submit the training job. The commands come from
# scripts/ray_commands.py (the config's names and training.args); JOB_ARGS="..." replaces the arguments.
dashboard: deps
	eval "$$($(VENV)/bin/python -m scripts.ray_commands dashboard)"

submit: $(VENV)/.synced-all
	export PATH="$(CURDIR)/$(VENV)/bin:$$PATH"; eval "$$($(VENV)/bin/python -m scripts.ray_commands submit $(JOB_ARGS))"

job-yaml: deps
	$(VENV)/bin/python -m scripts.render_jobs --out rendered

image:
	training/build_and_push_image.sh

diagram: synth $(VENV)/.synced-all
	$(VENV)/bin/python scripts/diagram.py --synth-dir cdktf.out --out docs/architecture.svg --png docs/architecture.png

pipeline:
	eval "$$(terraform -chdir=cdktf.out/stacks/ray output -raw start_execution_command)"

clean:
	rm -rf cdktf.out build rendered .pytest_cache
