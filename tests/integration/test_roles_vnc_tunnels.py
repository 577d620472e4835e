"""playbooks/vnc_tunnels.yml against a real sshd on 127.0.0.1 (own config and keys) and a
running tiny guest with VNC: open (a VNC banner comes through the tunnel), re-run (no second
tunnel), close, close again (nothing to do)."""
import json
import os
import re
import socket
import subprocess
import time

import pytest

from support import paths
from support.ansible_run import run_playbook
from support.libvirt_helpers import tiny_guest_xml, wait_for_text
from support.sshd import SSHD, private_sshd

PLAYBOOK = os.path.join(paths.REPO, 'playbooks', 'vnc_tunnels.yml')
OFFSET = 20000   # local port = guest port + OFFSET: the guest's own port is taken on 127.0.0.1


@pytest.fixture
def sshd():
    """An sshd on 127.0.0.1:<free port> with its own host key, client key and config."""
    if not os.access(SSHD, os.X_OK):
        pytest.skip('openssh-server is not installed')
    with private_sshd() as daemon:
        yield daemon


def tunnel_pids(forward):
    out = subprocess.run(['pgrep', '-a', '-x', 'ssh'], stdout=subprocess.PIPE,
                         universal_newlines=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if ' -L %s ' % forward in line]


def rfb_banner(port):
    with socket.create_connection(('127.0.0.1', port), 5) as s:
        s.settimeout(10)
        return s.recv(12)


def run(inventory, extra):
    doc = run_playbook(PLAYBOOK, inventory=inventory, extra_vars=extra)
    assert doc['_rc'] == 0, json.dumps(doc['stats']) + doc['_stderr'][-3000:]
    return doc


def task_result(doc, name):
    for play in doc['plays']:
        for task in play['tasks']:
            if task['task']['name'] == name:
                return task['hosts']['localhost']
    raise AssertionError('no task %r' % name)


def test_vnc_tunnels_open_once_and_close(conn, prefix, image_dir, tiny, sshd):
    log = os.path.join(image_dir, 'serial.log')
    dom = conn.defineXML(tiny_guest_xml(
        prefix + 'vnc', tiny, log, devices="<graphics type='vnc' autoport='yes' listen='127.0.0.1'/>"
        "<video><model type='vga'/></video>"))
    dom.create()
    vnc_port = int(re.search(r"<graphics type='vnc' port='(\d+)'", dom.XMLDesc(0)).group(1))
    wait_for_text(log, 'KVMOPS-TINY-GUEST BOOTED', timeout=90)
    local = vnc_port + OFFSET
    forward = '127.0.0.1:%d:127.0.0.1:%d' % (local, vnc_port)

    inventory = os.path.join(image_dir, 'inventory.json')
    with open(inventory, 'w') as f:
        json.dump({'hypervisors': {'hosts': {'hv1': {
            # play 1 asks libvirt here directly; the tunnel goes through the test sshd
            'ansible_connection': 'local', 'ansible_python_interpreter': paths.TARGET_PYTHON,
            'ansible_host': '127.0.0.1', 'ansible_port': sshd['port'], 'ansible_user': 'root'}}}}, f)
    extra = {
        'vnc_tunnels_guest_pattern': '^' + re.escape(prefix),
        'vnc_tunnels_port_offset': OFFSET,
        'vnc_tunnels_ssh_args': ['-i', sshd['key'], '-o', 'StrictHostKeyChecking=no',
                                 '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR'],
    }
    try:
        # open
        doc = run(inventory, extra)
        opened = task_result(doc, 'Open the missing tunnels')
        assert [r['item']['domain'] for r in opened['results'] if r.get('changed')] == [prefix + 'vnc']
        assert len(tunnel_pids(forward)) == 1
        assert rfb_banner(local).startswith(b'RFB 003.')   # QEMU's VNC, through sshd

        # again: the tunnel is up, nothing is opened twice
        doc = run(inventory, extra)
        assert doc['stats']['localhost']['changed'] == 0
        assert len(tunnel_pids(forward)) == 1
        shown = task_result(doc, 'Show where to point a VNC viewer')['msg']
        assert any('vncviewer localhost:%d' % local in line for line in shown), shown

        # close
        doc = run(inventory, dict(extra, vnc_tunnels_state='absent'))
        assert doc['stats']['localhost']['changed'] == 1
        deadline = time.monotonic() + 10
        while tunnel_pids(forward) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tunnel_pids(forward) == []
        with pytest.raises(OSError):
            rfb_banner(local)

        # close again: nothing to do
        doc = run(inventory, dict(extra, vnc_tunnels_state='absent'))
        assert doc['stats']['localhost']['changed'] == 0
    finally:
        for pid in tunnel_pids(forward):
            subprocess.call(['kill', pid])
