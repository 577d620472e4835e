"""site.yml --check --diff on a bare Debian 12 host (no libvirt yet) predicts, never crashes.

The host is a podman container from testbed/images/barehost.packages (systemd, python3, no
libvirt, no python3-apt), reached with the containers.podman connection. The real run in the
same container afterwards takes minutes (apt inside the container): it is
tests/containers/test_site_bare_host_real_run.py, `make containers`.
"""
import os
import shutil

import pytest

from support import containers
from support.ansible_run import run_playbook
from support import paths

SITE = os.path.join(paths.REPO, 'playbooks', 'site.yml')


@pytest.fixture
def bare_host(tmp_path):
    if not shutil.which('podman'):
        pytest.skip('podman is not installed (testbed/setup_podman.sh installs it)')
    ref = containers.image('barehost')
    with containers.running(ref, 'kvmops-t-bare-') as name:
        containers.copy_tiny_media(name)
        yield name, containers.write_inventory(str(tmp_path / 'inventory.json'), name)


def test_site_check_mode_on_a_bare_host_predicts_and_changes_nothing(bare_host):
    name, inventory = bare_host
    doc = run_playbook(SITE, inventory=inventory, check=True, diff=True,
                       extra_vars=containers.BARE_HOST_VARS)
    containers.assert_check_mode_predicted(doc, name)
    containers.assert_still_bare(name)
