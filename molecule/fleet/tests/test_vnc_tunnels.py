"""playbooks/vnc_tunnels.yml across the three hypervisors, from this controller: one tunnel per
guest, local ports that do not collide between hosts, each tunnel reaches its own guest's RFB
banner, a re-run opens nothing, and closing removes every tunnel."""
import json
import os
import socket
import subprocess

import pytest

PROJECT = os.environ['MOLECULE_PROJECT_DIRECTORY']
INVENTORY = os.environ['MOLECULE_INVENTORY_FILE']
KEY = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'fleet_ed25519')
OFFSET = 20000   # local ports 25900, 26000, 26100: clear of this machine's own VNC displays
GUEST = '^kvmops-fleet-guest$'


def tunnels_playbook(state):
    extra = {'vnc_tunnels_state': state, 'vnc_tunnels_port_offset': OFFSET,
             'vnc_tunnels_guest_pattern': GUEST,
             'vnc_tunnels_ssh_args': ['-i', KEY, '-o', 'StrictHostKeyChecking=no',
                                      '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR']}
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_NOCOLOR='1')
    proc = subprocess.run(['ansible-playbook', '-i', INVENTORY,
                           os.path.join(PROJECT, 'playbooks', 'vnc_tunnels.yml'), '-e', json.dumps(extra)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=env, timeout=300, check=False)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {}
    for play in doc['plays']:
        for task in play['tasks']:
            if 'localhost' in task['hosts']:
                results[task['task']['name']] = task['hosts']['localhost']
    return doc, results


def banner(port):
    with socket.create_connection(('127.0.0.1', port), 5) as s:
        s.settimeout(10)
        return s.recv(12)


def ssh_lines():
    out = subprocess.run(['pgrep', '-a', '-x', 'ssh'], stdout=subprocess.PIPE,
                         universal_newlines=True, check=False).stdout
    return [line for line in out.splitlines() if 'SetEnv=KVMOPS_VNC_TUNNEL=kvmops-fleet-guest ' in line
            and '-i %s ' % KEY in line]


@pytest.fixture(scope='module')
def opened():
    doc, results = tunnels_playbook('present')
    try:
        yield doc, results
    finally:
        tunnels_playbook('absent')


def test_one_tunnel_per_guest_without_port_collisions(opened):
    results = opened[1]
    tunnels = results['Work out one tunnel per guest display']['ansible_facts']['vnc_tunnels']
    hosts = ['kvmops-molecule-fleet-hv1', 'kvmops-molecule-fleet-hv2', 'kvmops-molecule-fleet-hv3']
    assert sorted(t['hypervisor'] for t in tunnels) == hosts
    local = [t['local_port'] for t in tunnels]
    assert len(set(local)) == 3, local
    # The three guests have the same display (:0, port 5900) on their own hypervisors.
    assert {t['port'] for t in tunnels} == {5900}
    assert len({t['destination'] for t in tunnels}) == 3
    assert len(ssh_lines()) == 3


def test_every_tunnel_reaches_its_guests_rfb_banner(opened):
    results = opened[1]
    for t in results['Work out one tunnel per guest display']['ansible_facts']['vnc_tunnels']:
        assert banner(t['local_port']).startswith(b'RFB 003.'), t


def test_rerun_opens_no_second_tunnel(opened):
    doc = tunnels_playbook('present')[0]
    assert doc['stats']['localhost']['changed'] == 0
    assert len(ssh_lines()) == 3


def test_close_removes_every_tunnel(opened):
    results = opened[1]
    ports = [t['local_port'] for t in results['Work out one tunnel per guest display']['ansible_facts']['vnc_tunnels']]
    doc = tunnels_playbook('absent')[0]
    assert doc['stats']['localhost']['changed'] == 1
    assert ssh_lines() == []
    for port in ports:
        with pytest.raises(OSError):
            banner(port)
