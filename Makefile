# kvmops.hypervisor: `make demo` and `make test` each do their own set-up (testbed/setup.sh).
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PYTEST := $(VENV)/bin/pytest
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections

.PHONY: setup test unit integration cloud-guests selinux-enforcing lint sanity molecule molecule-fleet demo bench collection-link containers fuzz reliability

setup:
	@testbed/setup.sh

collection-link:
	@mkdir -p .build/collections/ansible_collections/kvmops
	@ln -sfn $(CURDIR) .build/collections/ansible_collections/kvmops/hypervisor

unit: setup collection-link
	$(PYTEST) tests/unit -q --junitxml=.build/reports/unit.xml

integration: setup collection-link
	$(PYTEST) tests/integration -q -m "not cloud and not selinux" --durations=12 --junitxml=.build/reports/integration.xml

# The cloud-image guests that boot (issue 15): three Debian cloud guests on this host and one
# in a podman-container hypervisor boot under TCG (minutes each): outside `make test`'s budget.
cloud-guests: setup collection-link
	@testbed/build_debian_image.sh cloud --disk
	$(PYTEST) tests/integration -q -s -m cloud --durations=5 --junitxml=.build/reports/cloud.xml

# SELinux enforcing, for real (issue 16): the collection's modules inside a Debian 12 guest
# whose kernel enforces SELinux, over the guest agent (no NIC). One TCG guest, minutes:
# outside `make test`'s budget. The image is built once (testbed/images/selinux.*), then cached.
selinux-enforcing: setup collection-link
	@testbed/build_debian_image.sh selinux --disk
	$(PYTEST) tests/integration/test_selinux_enforcing.py -q -s -m selinux --durations=5 \
		--junitxml=.build/reports/selinux.xml

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
	testbed/with_testbed_lock.sh exclusive molecule test
	$(MAKE) --no-print-directory molecule-fleet

# Three hypervisors in podman containers, each with its own libvirtd: this machine's libvirtd
# is not touched, so no test-bed lock. The first run builds the image (~2-3 min, then cached).
molecule-fleet: setup collection-link
	@testbed/setup_podman.sh
	molecule test -s fleet

# Tests in podman containers that take minutes (apt from the Debian mirror inside them):
# site.yml on a bare host (check, real run, re-run) and the persisted iptables rule for VNC.
# Not part of `make test`.
containers: setup collection-link
	@testbed/setup_podman.sh
	$(PYTEST) tests/containers -q --durations=12 --junitxml=.build/reports/containers.xml

demo: setup collection-link
	@testbed/demo.sh

bench: setup collection-link
	@bench/run.sh

# The property-based suites (hypothesis) with a long, randomised search; `make test` runs the
# same tests with the derandomised `ci` budget (tests/conftest.py). Failures found are kept in
# .build/hypothesis and replayed first next time.
PROPERTY_TESTS := $(shell find tests/unit -name 'test_*_properties.py') \
	tests/unit/plugins/module_utils/_guest/test_guest_path_escapes.py
fuzz: setup collection-link
	HYPOTHESIS_PROFILE=fuzz $(PYTEST) $(PROPERTY_TESTS) -q --durations=5

# Every fault test against the real daemon, the daemon kills and restarts included (they take
# the test-bed lock exclusively), concurrent runs 20 times; then tests/RELIABILITY.md.
reliability: setup collection-link
	@rm -rf .build/reports/reliability
	-KVMOPS_RELIABILITY=1 $(PYTEST) tests/integration/test_faults_storage.py \
		tests/integration/test_faults_install_media.py tests/integration/test_faults_concurrency.py \
		tests/integration/test_faults_daemon.py tests/integration/test_secrets.py \
		tests/integration/test_hostile_guest_storage.py -q \
		--durations=20 --junitxml=.build/reports/reliability.xml
	$(VENV)/bin/python tools/reliability_report.py .build/reports/reliability.xml
