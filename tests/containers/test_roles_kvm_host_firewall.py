"""kvm_host's iptables rule for VNC survives a reboot: saved the distribution's way.

In a libvirt host container (testbed/images/libvirthost.packages), whose netfilter tables are
its own: this machine's firewall is never touched. The role opens the VNC range with
iptables, installs iptables-persistent from the Debian mirror, saves the rules and enables
netfilter-persistent; flushing the chain and restarting that service (what a reboot does)
brings the rule back. The RHEL family's iptables-services cannot be installed here: its names
are checked as data.
"""
import json
import os
import shutil

import pytest
import yaml

from support import containers, paths
from support.ansible_run import run_playbook

RULE = 'kvmops VNC consoles'


def run(tmp_path, inventory, check=False):
    play = [{'hosts': 'hypervisors', 'gather_facts': True, 'gather_subset': ['min'], 'tasks': [
        {'name': 'firewall', 'ansible.builtin.include_role': {
            'name': 'kvmops.hypervisor.kvm_host', 'tasks_from': 'firewall'},
         'vars': {'kvm_host_firewall': 'iptables'}}]}]
    playbook = tmp_path / 'play.yml'
    playbook.write_text(json.dumps(play))
    return run_playbook(str(playbook), inventory=inventory, check=check, timeout=600)


def failed(doc):
    return json.dumps([(t['task']['name'], h.get('msg')) for p in doc['plays'] for t in p['tasks']
                       for h in t['hosts'].values() if h.get('failed')])[:3000]


def test_the_vnc_rule_is_saved_and_restored_at_boot(tmp_path):
    if not shutil.which('podman'):
        pytest.skip('podman is not installed (testbed/setup_podman.sh installs it)')
    with containers.running(containers.image('libvirthost'), 'kvmops-t-fw-') as name:
        inventory = containers.write_inventory(str(tmp_path / 'inventory.json'), name)
        # check mode: predicts, changes nothing
        doc = run(tmp_path, inventory, check=True)
        assert doc['_rc'] == 0, failed(doc)
        assert RULE not in containers.podman_exec(name, 'iptables', '-S', 'INPUT').stdout
        assert containers.podman_exec(name, 'dpkg-query', '-W', 'iptables-persistent').returncode != 0

        doc = run(tmp_path, inventory)
        assert doc['_rc'] == 0, failed(doc)
        assert RULE in containers.podman_exec(name, 'iptables', '-S', 'INPUT').stdout
        saved = containers.podman_exec(name, 'cat', '/etc/iptables/rules.v4').stdout
        assert RULE in saved and '--dport 5900:5950' in saved
        assert containers.podman_exec(name, 'systemctl', 'is-enabled',
                                      'netfilter-persistent').stdout.strip() == 'enabled'

        doc = run(tmp_path, inventory)
        assert doc['_rc'] == 0 and doc['stats'][name]['changed'] == 0, doc['stats'][name]

        # what a reboot does: the rule is gone from the kernel, the service restores it
        containers.podman_exec(name, 'iptables', '-F', 'INPUT')
        assert RULE not in containers.podman_exec(name, 'iptables', '-S', 'INPUT').stdout
        assert containers.podman_exec(name, 'systemctl', 'restart', 'netfilter-persistent').returncode == 0
        assert RULE in containers.podman_exec(name, 'iptables', '-S', 'INPUT').stdout


def test_the_persistence_of_each_family():
    with open(os.path.join(paths.REPO, 'roles', 'kvm_host', 'vars', 'main.yml')) as f:
        persist = yaml.safe_load(f)['kvm_host_iptables_persist']
    assert persist['Debian']['package'] == 'iptables-persistent'
    assert persist['Debian']['service'] == 'netfilter-persistent'
    assert persist['RedHat'] == {'package': 'iptables-services', 'rules': '/etc/sysconfig/iptables',
                                 'save': ['/usr/libexec/iptables/iptables.init', 'save'],
                                 'service': 'iptables'}
