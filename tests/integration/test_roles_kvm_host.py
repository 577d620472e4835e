"""kvm_host's qemu.conf handler on the real daemon: a changed host-wide VNC address restarts
libvirtd through the role's handler, and libvirt answers again before the play goes on.
qemu.conf is restored byte for byte (and the daemon restarted) afterwards."""
import json
import os
import subprocess
import tempfile
import time

from support import paths
from support.ansible_run import run_playbook

QEMU_CONF = '/etc/libvirt/qemu.conf'
DEMO_INVENTORY = os.path.join(paths.REPO, 'inventories', 'demo')


def libvirtd_pid():
    """The live daemon's PID (pgrep would also list <defunct> ones: PID 1 here does not reap)."""
    with open('/run/libvirtd.pid') as f:
        return f.read().strip()


def restart_libvirtd():
    subprocess.run(['service', 'libvirtd', 'restart'], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subprocess.run(['virsh', '-c', paths.URI, 'version'], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError('libvirtd did not come back')


def test_vnc_listen_change_restarts_the_daemon_through_the_handler(daemon_exclusive):
    with open(QEMU_CONF, 'rb') as f:
        original = f.read()
    pid_before = libvirtd_pid()
    play = [{'hosts': 'hypervisors', 'gather_facts': True, 'gather_subset': ['min'],
             'roles': [{'role': 'kvmops.hypervisor.kvm_host',
                        'kvm_host_manage_packages': False,
                        'kvm_host_vnc_listen': '127.0.0.2'}],
             'post_tasks': [{'name': 'libvirt answers after the handler',
                             'ansible.builtin.command': 'virsh -c qemu:///system version',
                             'changed_when': False}]}]
    fd, path = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump(play, f)
    try:
        doc = run_playbook(path, inventory=DEMO_INVENTORY)
        failed = [(t['task']['name'], t['hosts'].get('localhost', {}).get('msg'))
                  for t in doc['plays'][0]['tasks'] if t['hosts'].get('localhost', {}).get('failed')]
        assert doc['_rc'] == 0, json.dumps(failed)[:3000] + doc['_stderr'][-2000:]
        names = {}
        for task in doc['plays'][0]['tasks']:
            names[task['task']['name'].split(' : ')[-1]] = task['hosts'].get('localhost', {})
        assert names['Set the host-wide VNC listen address in qemu.conf']['changed'] is True
        assert names['Restart the QEMU daemon']['changed'] is True
        assert names['Wait until libvirt answers again'].get('rc') == 0
        assert 'libvirt answers after the handler' in names
        assert libvirtd_pid() != pid_before           # really restarted
        with open(QEMU_CONF) as f:
            assert 'vnc_listen = "127.0.0.2"' in f.read().splitlines()
        # no firewall rule for a loopback address
        assert 'Open the VNC port range with iptables' not in names or names[
            'Open the VNC port range with iptables'].get('skipped')
    finally:
        os.unlink(path)
        with open(QEMU_CONF, 'rb') as f:
            changed = f.read() != original
        if changed:
            with open(QEMU_CONF, 'wb') as f:
                f.write(original)
            restart_libvirtd()


def _iptables_rules():
    return subprocess.run(['iptables', '-S', 'INPUT'], stdout=subprocess.PIPE,
                          universal_newlines=True, check=False).stdout


def test_public_vnc_opens_the_port_range_in_the_firewall_check_mode():
    """Beyond loopback (here only in check mode: no test may listen on a public address) the
    role writes the autoport range and opens it with iptables (no firewalld here)."""
    with open(QEMU_CONF, 'rb') as f:
        conf_before = f.read()
    rules_before = _iptables_rules()
    play = [{'hosts': 'hypervisors', 'gather_facts': True, 'gather_subset': ['min'],
             'roles': [{'role': 'kvmops.hypervisor.kvm_host',
                        'kvm_host_manage_packages': False,
                        'kvm_host_vnc_listen': '0.0.0.0',
                        'kvm_host_vnc_allow_insecure': True,
                        'kvm_host_vnc_port_min': 5900, 'kvm_host_vnc_port_max': 5950}]}]
    fd, path = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump(play, f)
    try:
        doc = run_playbook(path, inventory=DEMO_INVENTORY, check=True, diff=True)
    finally:
        os.unlink(path)
    assert doc['_rc'] == 0, json.dumps(doc['stats']) + doc['_stderr'][-3000:]
    names = {}
    for task in doc['plays'][0]['tasks']:
        names[task['task']['name'].split(' : ')[-1]] = task['hosts'].get('localhost', {})
    vnc = names['Set the host-wide VNC listen address in qemu.conf']
    assert vnc['changed'] is True
    keys = {c['key']: c['after'] for c in vnc['config_changes']}
    assert keys['vnc_listen'] == 'vnc_listen = "0.0.0.0"'
    assert keys['remote_display_port_max'] == 'remote_display_port_max = 5950'  # min 5900 is the default
    ipt = names['Open the VNC port range with iptables']
    assert ipt['changed'] is True and ipt['rule'].find('5900:5950') >= 0, ipt
    assert names['Open the VNC port range with firewalld'].get('skipped') is True
    # check mode: nothing changed
    with open(QEMU_CONF, 'rb') as f:
        assert f.read() == conf_before
    assert _iptables_rules() == rules_before
