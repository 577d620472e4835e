"""What the firewalld tests in podman hypervisors share (tests/trixie/test_firewalld.py,
tests/remote_access/test_libvirt_tls_firewalld.py): the zone they use, a play's recap checked
for failures, and the services enabled in that zone inside the container."""
import contextlib
import json
import shutil

import pytest

from support import containers

ZONE = 'work'          # not firewalld's default zone (public): the zone option is honoured


def ok(doc, name):
    """The play ran without failure on host `name`: its recap stats."""
    assert doc['_rc'] == 0 and doc['stats'][name]['failures'] == 0, json.dumps(
        [(t['task']['name'], h.get('msg')) for p in doc['plays'] for t in p['tasks']
         for h in t['hosts'].values() if h.get('failed')])[:3000] + doc['_stderr'][-2000:]
    return doc['stats'][name]


def services(name, permanent=False):
    """The services enabled in ZONE in container `name`, at runtime or permanently."""
    argv = ['firewall-cmd', '--zone', ZONE, '--list-services'] + (['--permanent'] if permanent else [])
    return containers.podman_exec(name, *argv).stdout.split()


@contextlib.contextmanager
def firewalld_host(tmp_path, prefix):
    """A Debian 13 hypervisor container (testbed/images/trixiehost.*, which ships firewalld) with
    firewalld running and eth0 in ZONE, at runtime and permanently as an admin would (firewalld
    writes kernel rules for active zones only, and the first definition of a kvmops service
    reloads firewalld, which drops runtime-only changes). Yields (name, inventory path)."""
    if not shutil.which('podman'):
        pytest.skip('podman is not installed (testbed/setup_podman.sh installs it)')
    image = containers.image('trixiehost')
    with containers.running(image, prefix, boot_timeout=300) as name:
        assert containers.podman_exec(name, 'systemctl', 'start', 'firewalld').returncode == 0
        assert containers.podman_exec(name, 'firewall-cmd', '--state').stdout.strip() == 'running'
        for extra in ([], ['--permanent']):
            assert containers.podman_exec(name, 'firewall-cmd', '--zone', ZONE, '--change-interface',
                                          'eth0', *extra).returncode == 0
        yield name, containers.write_inventory(str(tmp_path / 'inventory.json'), name)
