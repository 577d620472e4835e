"""kvm_host's VNC port range with firewalld for real (the RHEL family's firewall; issue 32).

In a Debian 13 hypervisor container (testbed/images/trixiehost.packages ships firewalld, not
enabled) with firewalld started: a public VNC listen opens the range as the kvmops-vnc
firewalld service in the chosen zone, permanently and at runtime (checked with firewall-cmd
and in the kernel's nftables ruleset); a re-run changes nothing; VNC back on loopback closes
it again; check mode changes nothing on the way. The container's netfilter tables are its
own: this machine's firewall is never touched. make trixie.
"""
import json

import pytest

from support import containers
from support.ansible_run import run_playbook
from support.firewalld import ZONE, firewalld_host, ok, services

pytestmark = pytest.mark.trixie


def play(tmp_path, inventory, listen, check=False):
    tasks = [{'name': 'vnc', 'ansible.builtin.include_role': {
        'name': 'kvmops.hypervisor.kvm_host', 'tasks_from': 'vnc'},
        'vars': {'kvm_host_vnc_listen': listen, 'kvm_host_vnc_allow_insecure': True,
                 'kvm_host_firewall': 'auto', 'kvm_host_firewall_zone': ZONE,
                 'kvm_host_daemon_layout': 'monolithic'}}]
    path = tmp_path / 'play.yml'
    path.write_text(json.dumps([{'hosts': 'hypervisors', 'gather_facts': True,
                                 'gather_subset': ['min'], 'tasks': tasks}]))
    return run_playbook(str(path), inventory=inventory, check=check, diff=True, timeout=600)


def nft_has_range(name):
    """The kernel's ruleset (through python3-nftables, which firewalld uses; no nft CLI)."""
    script = ('import nftables; n = nftables.Nftables(); rc, out, err = n.cmd("list ruleset"); '
              'print(out)')
    ruleset = containers.podman_exec(name, 'python3', '-c', script).stdout
    assert 'table inet firewalld' in ruleset, ruleset[:2000]
    return '5900-5950' in ruleset


def test_vnc_range_opened_in_the_zone_and_closed_again(tmp_path):
    with firewalld_host(tmp_path, 'kvmops-t-firewalld-') as (name, inventory):

        # check mode: predicts, changes nothing
        stats = ok(play(tmp_path, inventory, '0.0.0.0', check=True), name)
        assert stats['changed'] > 0
        assert 'kvmops-vnc' not in services(name) + services(name, permanent=True)
        assert containers.podman_exec(name, 'test', '-e', '/etc/firewalld/services/kvmops-vnc.xml').returncode != 0

        ok(play(tmp_path, inventory, '0.0.0.0'), name)
        assert 'kvmops-vnc' in services(name), services(name)                  # runtime
        assert 'kvmops-vnc' in services(name, permanent=True)                  # permanent
        public = containers.podman_exec(name, 'firewall-cmd', '--zone', 'public', '--list-services').stdout
        assert 'kvmops-vnc' not in public
        info = containers.podman_exec(name, 'firewall-cmd', '--info-service', 'kvmops-vnc').stdout
        assert '5900-5950/tcp' in info, info
        assert nft_has_range(name)                                             # in the kernel

        stats = ok(play(tmp_path, inventory, '0.0.0.0'), name)
        assert stats['changed'] == 0, stats
        # a firewalld restart (what a reboot does) keeps it: it is permanent
        assert containers.podman_exec(name, 'systemctl', 'restart', 'firewalld').returncode == 0
        assert 'kvmops-vnc' in services(name)

        # back to loopback: the range is closed, runtime and permanent
        stats = ok(play(tmp_path, inventory, '127.0.0.1', check=True), name)
        assert 'kvmops-vnc' in services(name)
        ok(play(tmp_path, inventory, '127.0.0.1'), name)
        assert 'kvmops-vnc' not in services(name) + services(name, permanent=True)
        assert not nft_has_range(name)
        stats = ok(play(tmp_path, inventory, '127.0.0.1'), name)
        assert stats['changed'] == 0, stats
