# kvmops.hypervisor: `make demo` and `make test` each do their own set-up (testbed/setup.sh).
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PYTEST := $(VENV)/bin/pytest
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections

.PHONY: setup test unit integration cloud-guests lint sanity molecule demo bench collection-link

setup:
	@testbed/setup.sh

collection-link:
	@mkdir -p .build/collections/ansible_collections/kvmops
	@ln -sfn $(CURDIR) .build/collections/ansible_collections/kvmops/hypervisor

unit: setup collection-link
	$(PYTEST) tests/unit -q --junitxml=.build/reports/unit.xml

integration: setup collection-link
	$(PYTEST) tests/integration -q -m "not cloud" --durations=12 --junitxml=.build/reports/integration.xml

# The cloud-image guests that boot (issue 15): three Debian cloud guests on this host and one
# in a podman-container hypervisor boot under TCG (minutes each): outside `make test`'s budget.
cloud-guests: setup collection-link
	$(PYTEST) tests/integration -q -s -m cloud --durations=5 --junitxml=.build/reports/cloud.xml

lint: setup
	ansible-lint --offline

sanity: setup
	tools/sanity.sh

test: setup collection-link
	@rm -rf .build/reports
	$(MAKE) --no-print-directory unit integration lint sanity molecule
	@$(VENV)/bin/python tools/test_summary.py .build/reports/unit.xml .build/reports/integration.xml

# The molecule scenario converges site.yml on this machine, which may restart libvirtd:
# hold the test-bed lock exclusively (integration tests hold it shared).
molecule: setup collection-link
	flock -x /run/kvmops-testbed.lock molecule test

demo: setup collection-link
	@testbed/demo.sh

bench: setup collection-link
	@bench/run.sh
