"""The README's bare-host path for real, in one bare Debian 12 podman container (make containers):
site.yml --check --diff predicts, then the real run installs libvirt from the Debian mirror
inside the container, starts libvirtd under systemd and boots the tiny guest (TCG), then a
second run and a second check change nothing. Minutes (apt), hence not in `make test`;
tests/integration/test_site_bare_host.py keeps the check-mode half there.
"""
import os
import shutil
import time

import pytest

from support import containers
from support.ansible_run import run_playbook
from support import paths

SITE = os.path.join(paths.REPO, 'playbooks', 'site.yml')


def wait_in(name, argv, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = containers.podman_exec(name, *argv)
        if proc.returncode == 0:
            return proc.stdout
        time.sleep(1)
    raise AssertionError('%s: %s did not succeed within %ss' % (name, argv, timeout))


def test_site_on_a_bare_host_check_real_rerun(tmp_path):
    if not shutil.which('podman'):
        pytest.skip('podman is not installed (testbed/setup_podman.sh installs it)')
    ref = containers.image('barehost')
    with containers.running(ref, 'kvmops-t-bare-real-') as name:
        containers.copy_tiny_media(name)
        inventory = containers.write_inventory(str(tmp_path / 'inventory.json'), name)
        extra = containers.BARE_HOST_VARS

        doc = run_playbook(SITE, inventory=inventory, check=True, diff=True, extra_vars=extra)
        containers.assert_check_mode_predicted(doc, name)
        containers.assert_still_bare(name)

        doc = run_playbook(SITE, inventory=inventory, diff=True, extra_vars=extra, timeout=1500)
        stats = doc['stats'][name]
        assert doc['_rc'] == 0 and stats['failures'] == 0, str(stats) + doc['_stderr'][-3000:]
        # What check mode predicted happened: libvirt is installed and answers, the guest runs.
        assert containers.podman_exec(name, 'dpkg-query', '-W', 'libvirt-daemon-system').returncode == 0
        assert 'running' in containers.podman_exec(
            name, 'virsh', '-c', 'qemu:///system', 'domstate', containers.GUEST).stdout
        wait_in(name, ['grep', '-q', 'KVMOPS-TINY-GUEST BOOTED', containers.GUEST_SERIAL], 120)
        pools = containers.podman_exec(name, 'virsh', 'pool-list', '--name').stdout.split()
        assert 'vm-images' in pools

        for check in (False, True):   # re-run, then check mode on the configured host
            doc = run_playbook(SITE, inventory=inventory, check=check, diff=True, extra_vars=extra)
            changed = [task for task, r in containers.task_results(doc, name).items() if r.get('changed')]
            assert doc['_rc'] == 0 and changed == [], (check, changed, doc['stats'][name])
