# kvmops.hypervisor: `make demo` and `make test` each do their own set-up (testbed/setup.sh).
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PYTEST := $(VENV)/bin/pytest
# Integration test files run on this many pytest-xdist workers (one file stays on one worker:
# its module-scoped guests are made once). Tests share libvirtd through the test-bed lock.
INTEGRATION_WORKERS ?= 2
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections

.PHONY: setup test unit integration cloud-guests selinux-enforcing lint sanity molecule molecule-fleet demo bench collection-link containers fuzz reliability stress-daemon trixie matrix backups remote-access migration clones console

setup:
	@testbed/setup.sh

collection-link:
	@mkdir -p .build/collections/ansible_collections/kvmops
	@ln -sfn $(CURDIR) .build/collections/ansible_collections/kvmops/hypervisor

unit: setup collection-link
	$(PYTEST) tests/unit -q --junitxml=.build/reports/unit.xml

integration: setup collection-link
	$(PYTEST) tests/integration -q -n $(INTEGRATION_WORKERS) --dist loadfile -m "not cloud and not selinux and not backups and not clones and not console" --durations=12 --junitxml=.build/reports/integration.xml

# The cloud-image guests that boot (issue 15): three Debian cloud guests on this host and one
# in a podman-container hypervisor boot under TCG (minutes each): outside `make test`'s budget.
cloud-guests: setup collection-link
	@testbed/build_debian_image.sh cloud --disk
	$(PYTEST) tests/integration -q -s -m cloud --durations=5 --junitxml=.build/reports/cloud.xml

# Backups (issue 29): a restored guest boots with its data; libvirtd killed during a backup
# (under the exclusive test-bed lock). The fast backup tests are in `make integration`.
backups: setup collection-link
	KVMOPS_RELIABILITY=1 $(PYTEST) tests/integration/test_virt_backup_long.py -q -s -m backups \
		--durations=5 --junitxml=.build/reports/backups.xml

# Ten linked clones of one template booted by one virt_install_domains task (issue 30):
# ten TCG guests at once, minutes under load: outside `make test`'s budget.
clones: setup collection-link
	$(PYTEST) tests/integration/test_clones.py -q -m clones --durations=5 \
		--junitxml=.build/reports/clones.xml

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
# is not touched, so no test-bed lock. The first run builds the images, Debian 12 and 13 side
# by side (~3-6 min, then cached).
molecule-fleet: setup collection-link
	@testbed/setup_podman.sh
	molecule test -s fleet

# Tests in podman containers that take minutes (apt from the Debian mirror inside them):
# site.yml on a bare host (check, real run, re-run) and the persisted iptables rule for VNC.
# Not part of `make test`.
containers: setup collection-link
	@testbed/setup_podman.sh
	$(PYTEST) tests/containers -q --durations=12 --junitxml=.build/reports/containers.xml

# A Debian 13 hypervisor (libvirt 11, QEMU 10, Python 3.13, passt) in a podman container
# (issue 32): site.yml converge and re-run, the guest modules (passt and QEMU port forwards,
# networks, snapshots), and the VNC range with firewalld running. The image is built once
# (testbed/images/trixiehost.*, ~3 min), then cached. Not part of `make test`.
trixie: setup collection-link
	@testbed/setup_podman.sh
	$(PYTEST) tests/trixie -q -m trixie --durations=12 --junitxml=.build/reports/trixie.xml

# The controller matrix (issue 32): ansible-core 2.17, 2.18, 2.19 and 2.20, each in its own
# venv (testbed/controller_venv.sh; 2.20 on pyenv's Python 3.12): ansible-test sanity, the unit
# tests, the inventory plugin, site.yml check mode and a real site.yml run with a tiny guest
# and its re-run. tools/matrix.sh prints a table. Not part of `make test`.
matrix: setup collection-link
	tools/matrix.sh

# Remote access for real (issue 31): the libvirt_pki role on two podman hypervisors
# (testbed/images/pkihost.*, built once ~3 min, then cached), qemu+tls:// from this machine
# and between the hypervisors, refusals (another CA, a DN not admitted), virt-pki-validate,
# renewal of 1-day certificates without a restart, idempotence. Minutes: not in `make test`
# (the role's controller half and the console guards are, in seconds).
# Also what a remote URI may do (issue 26, tests/remote_access/test_remote_uri.py, ~1 min):
# one hypervisor container reached over qemu+tcp://, a sentinel file here at its disk's path.
remote-access: setup collection-link
	@testbed/setup_podman.sh
	$(PYTEST) tests/remote_access -q -m remote_access --durations=10 \
		--junitxml=.build/reports/remote-access.xml

# Live migration and hypervisor drains (issue 28): podman hypervisors (2 or 3 at a time) that
# move counting tiny guests between each other; this machine's libvirtd is not touched, so no
# test-bed lock. Minutes: not part of `make test` (the planning logic's unit tests are).
migration: setup collection-link
	@testbed/setup_podman.sh
	$(PYTEST) tests/migration -q -m migration --durations=12 --junitxml=.build/reports/migration.xml

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
		tests/integration/test_faults_daemon.py tests/integration/test_testbed_daemon_watch.py \
		tests/integration/test_secrets.py tests/integration/test_hostile_guest_storage.py \
		tests/integration/test_hostile_install.py tests/integration/test_hostile_base_image.py \
		tests/integration/test_virt_backup.py::test_module_killed_during_a_backup_next_run_recovers \
		tests/integration/test_virt_backup.py::test_full_repository_file_system \
		tests/integration/test_virt_backup_long.py::test_libvirtd_killed_during_a_backup -q \
		--durations=20 --junitxml=.build/reports/reliability.xml
	$(VENV)/bin/python tools/reliability_report.py .build/reports/reliability.xml

# libvirtd under the load that crashed it (issue 25): rounds of the ten-guest batch while
# privileged systemd podman containers come and go beside it; prints how long it ran and how
# many daemon crashes, appends the run to tests/reliability/stress-daemon.jsonl and rewrites
# that section of tests/RELIABILITY.md. May kill the shared libvirtd: exclusive lock.
# STRESS_ROUNDS (8), STRESS_SECONDS (540), STRESS_CONTAINERS (2 slots; 0 = none).
stress-daemon: setup collection-link
	@testbed/setup_podman.sh
	rc=0; testbed/with_testbed_lock.sh exclusive $(VENV)/bin/python tools/stress_daemon.py \
		--record || rc=$$?; $(VENV)/bin/python tools/reliability_report.py --stress-section; \
		exit $$rc

# The console in a browser and VeNCrypt (issue 31): headless Chromium (Debian's chromium,
# installed only for this target) opens noVNC through websockify for a tiny guest on this
# host; gvnccapture captures a guest's VNC over TLS with a client certificate of the
# libvirt_pki role's CA (qemu.conf vnc_tls set under the exclusive test-bed lock for a few
# seconds, then restored). The token and websockify tests without a browser are in
# `make integration`.
console: collection-link
	@KVMOPS_TESTBED_BROWSER=1 testbed/setup.sh
	@testbed/setup_podman.sh
	$(PYTEST) tests/integration/test_console_browser.py tests/integration/test_console_vencrypt.py \
		tests/integration/test_console_role.py \
		-q -m console --durations=10 --junitxml=.build/reports/console.xml
