"""libvirt_pki's firewall step with firewalld for real (issue 31: libvirt's TLS port 16514/tcp).

In a Debian 13 hypervisor container (testbed/images/trixiehost.*: it ships firewalld, which
the pkihost image has not) with firewalld started: check mode changes nothing; the real run
defines the kvmops-libvirt-tls service and enables it in the chosen zone, permanently and at
runtime (firewall-cmd, and the kernel's nftables ruleset); a re-run changes nothing. The
container's netfilter tables are its own: this machine's firewall is never touched.
The iptables branch is checked by test_libvirt_pki_fleet.py (make remote-access).
"""
import json

import pytest

from support import containers
from support.ansible_run import run_playbook
from support.firewalld import ZONE, firewalld_host, ok, services

pytestmark = pytest.mark.remote_access


def play(tmp_path, inventory, check=False):
    tasks = [{'name': 'libvirt TLS port', 'ansible.builtin.include_role': {
        'name': 'kvmops.hypervisor.libvirt_pki', 'tasks_from': 'firewall'},
        'vars': {'libvirt_pki_firewall': 'auto', 'libvirt_pki_firewall_zone': ZONE}}]
    path = tmp_path / 'play.yml'
    path.write_text(json.dumps([{'hosts': 'hypervisors', 'gather_facts': False, 'tasks': tasks}]))
    return run_playbook(str(path), inventory=inventory, check=check, timeout=600)


def test_libvirt_tls_port_opened_with_firewalld(tmp_path):
    with firewalld_host(tmp_path, 'kvmops-t-pkitls-fwd-') as (name, inventory):

        stats = ok(play(tmp_path, inventory, check=True), name)
        assert stats['changed'] > 0
        assert 'kvmops-libvirt-tls' not in services(name) + services(name, permanent=True)
        assert containers.podman_exec(name, 'test', '-e',
                                      '/etc/firewalld/services/kvmops-libvirt-tls.xml').returncode != 0

        ok(play(tmp_path, inventory), name)
        assert 'kvmops-libvirt-tls' in services(name), services(name)
        assert 'kvmops-libvirt-tls' in services(name, permanent=True)
        info = containers.podman_exec(name, 'firewall-cmd', '--info-service', 'kvmops-libvirt-tls').stdout
        assert '16514/tcp' in info, info
        script = 'import nftables; n = nftables.Nftables(); rc, out, err = n.cmd("list ruleset"); print(out)'
        ruleset = containers.podman_exec(name, 'python3', '-c', script).stdout
        assert 'table inet firewalld' in ruleset and '16514' in ruleset, ruleset[:2000]

        stats = ok(play(tmp_path, inventory), name)
        assert stats['changed'] == 0, stats
