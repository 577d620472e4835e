"""kvm_host's browser console (tasks/console.yml).

Fast (make integration): the refusals run on this host and stop at their assert, before any
package, user or file: a public websockify listen without TLS, and the browser console on a
host with VNC TLS.
Marker console (make console): the real thing in a podman hypervisor with systemd as PID 1
(testbed/images/hypervisor.*): the role installs noVNC and websockify (apt inside the
container), makes the user and the token directory, copies the token plugin and starts
kvmops-console.service; websockify then runs as kvmops-console, serves vnc.html, and closes a
WebSocket with an unknown token; a re-run changes nothing. Traffic only inside the container
(every request is made there with its own python3).
"""
import json
import subprocess

import pytest

from support import ansible_run, containers

PLAY = [{'hosts': '{hosts}', 'gather_facts': '{facts}', 'tasks': [{
    'name': 'console', 'ansible.builtin.include_role': {
        'name': 'kvmops.hypervisor.kvm_host', 'tasks_from': 'console'}}]}]


def _play(tmp_path, hosts='localhost', facts=False, **extra):
    play = json.loads(json.dumps(PLAY).replace('"{hosts}"', json.dumps(hosts))
                      .replace('"{facts}"', json.dumps(facts)))
    play[0]['vars'] = extra
    path = tmp_path / 'play.yml'
    path.write_text(json.dumps(play))
    return str(path)


def _failure(doc):
    return [h.get('msg') for p in doc['plays'] for t in p['tasks'] for h in t['hosts'].values()
            if h.get('failed')]


@pytest.mark.parametrize('extra,phrase', [
    ({'kvm_host_console_listen': '0.0.0.0'}, 'Refusing kvm_host_console_listen=0.0.0.0 without TLS'),
    ({'kvm_host_vnc_tls': True}, 'Refusing the browser console on a host whose VNC uses TLS')])
def test_refusals_before_anything(tmp_path, extra, phrase):
    doc = ansible_run.run_playbook(_play(tmp_path, **extra), check=True)
    assert doc['_rc'] != 0
    msgs = _failure(doc)
    assert msgs and phrase in msgs[0], msgs
    changed = [t['task']['name'] for p in doc['plays'] for t in p['tasks']
               for h in t['hosts'].values() if h.get('changed')]
    assert changed == []


PROBE = r'''
import base64, os, socket, sys, urllib.request
port = int(sys.argv[1])
page = urllib.request.urlopen('http://127.0.0.1:%d/vnc.html' % port, timeout=10)
print('vnc.html', page.status, b'noVNC' in page.read())
s = socket.create_connection(('127.0.0.1', port), timeout=10)
s.sendall(('GET /websockify?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
           'Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n'
           'Sec-WebSocket-Protocol: binary\r\n\r\n'
           % ('q' * 43, base64.b64encode(os.urandom(16)).decode())).encode())
print('unknown token answer', repr(s.recv(100)))
'''


@pytest.mark.console
def test_console_unit_in_a_systemd_hypervisor(tmp_path):
    image = containers.image('hypervisor')
    with containers.running(image, 'kvmops-t-console-role-') as name:
        inventory = containers.write_inventory(str(tmp_path / 'inv.json'), name)
        # the image's apt lists are as old as the image: ask apt for fresh ones
        play = _play(tmp_path, hosts='hypervisors', facts=True, kvm_host_console=True,
                     kvm_host_apt_cache_valid_time=1)
        doc = ansible_run.run_playbook(play, inventory=inventory, timeout=900)
        assert doc['_rc'] == 0, (_failure(doc), doc['_stderr'][-3000:])

        def sh(cmd):
            out = containers.podman_exec(name, 'sh', '-c', cmd)
            return out.stdout + out.stderr

        assert sh('systemctl is-active kvmops-console.service').strip() == 'active', \
            sh('systemctl status kvmops-console.service; journalctl -u kvmops-console -n 30')
        ps = sh('ps -o user:20=,args= -C websockify')
        assert 'kvmops-console' in ps and 'kvmops_console_tokens.ExpiringTokenDir' in ps, ps
        assert sh('stat -c "%U:%G %a" /var/lib/kvmops/console/tokens').strip() == 'root:kvmops-console 750'
        probe = tmp_path / 'probe.py'
        probe.write_text(PROBE)
        assert containers.podman_exec(name, 'true').returncode == 0
        copy = subprocess.run(['podman', 'cp', str(probe), name + ':/tmp/probe.py'], check=False)
        assert copy.returncode == 0
        out = sh('python3 /tmp/probe.py 6080')
        assert 'vnc.html 200 True' in out and "unknown token answer b''" in out, out
        assert "Token '%s' not found" % ('q' * 43) in sh('journalctl -u kvmops-console --no-pager'), \
            sh('journalctl -u kvmops-console --no-pager -n 30')

        play = _play(tmp_path, hosts='hypervisors', facts=True, kvm_host_console=True)
        again = ansible_run.run_playbook(play, inventory=inventory, timeout=900)
        changed = [t['task']['name'] for p in again['plays'] for t in p['tasks']
                   for h in t['hosts'].values() if h.get('changed')]
        assert again['_rc'] == 0 and changed == [], changed
