# bootc.composefs — the two commands a newcomer needs:
#   make demo    build a simulated composefs host in a temp dir and run the demo playbook on it
#   make test    everything CI runs: sanity, lint, build + install, unit, integration (harnesses at CI size), Molecule
# Both prepare their own environment first (tests/setup/bootstrap.sh: apt packages, .venv, oracles).
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.ci/tmp/collections
export ANSIBLE_NOCOLOR := 1
PYTEST_ARGS ?=

.PHONY: env demo test unit integration sanity lint molecule bench build clean

env:
	tests/setup/bootstrap.sh

demo: env
	$(VENV)/bin/python tests/tools/demo.py

test: env
	tests/setup/run-tests.sh

unit: env
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit $(PYTEST_ARGS)

integration: env
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/integration $(PYTEST_ARGS)

sanity: env
	tests/setup/sanity.sh

lint: env
	$(VENV)/bin/ansible-lint --profile production

molecule: env
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/molecule $(PYTEST_ARGS)

# Benchmarks print their figures and the ratio to the reference tool; a missed target exits 1
# but the remaining benchmarks still run.
bench: env
	@rc=0; for b in bench/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b || rc=1; done; exit $$rc

build: env
	$(VENV)/bin/ansible-galaxy collection build --force

clean:
	rm -rf .ci/tmp collections tests/output bootc-composefs-*.tar.gz
