"""The whole chain of issue 15 with a hypervisor the test made: a podman container running
systemd, libvirtd (its own default NAT network, inside the container) and sshd. The guests
role creates a cloud guest there (wait_for: ssh, checked from inside the container), adds it
to the in-memory inventory with a ProxyJump through the container, and site.yml's third play
(taken from playbooks/site.yml as it is) reaches the guest through that jump.

Traffic rule: the host talks only to the container's address (a podman network this test's
container sits on); the guest's 192.168.122.x lives inside the container's namespace and is
reached only from there (the jump host). The cloud image is bind-mounted read-only.
"""
import base64
import json
import os
import subprocess
import time

import pytest
import yaml

from support import paths
from support.ansible_run import run_playbook

CLOUD_IMAGE = os.path.join(os.environ.get('KVMOPS_CACHE', '/var/cache/kvmops-testbed'),
                           'images', 'cloud')
TIMEOUT = int(os.environ.get('KVMOPS_CLOUD_BOOT_TIMEOUT', '1800'))


def sh(*cmd, timeout=600, check=True):
    return subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, check=check)


@pytest.fixture
def hypervisor(prefix, tmp_path):
    """A running cloudhost container reachable over SSH; yields its address and ssh config."""
    sh(os.path.join(paths.REPO, 'testbed', 'build_debian_image.sh'), 'cloud', '--disk',
       timeout=1800)
    ref = sh(os.path.join(paths.REPO, 'testbed', 'setup_podman.sh'), 'image', 'cloudhost',
             timeout=1800).stdout.strip().splitlines()[-1]
    key = str(tmp_path / 'id_ed25519')
    sh('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key)
    name = prefix + 'hv'
    sh('podman', 'run', '-d', '--name', name, '--privileged', '--systemd=always',
       '--hostname', 'cloudhost',
       '-v', '%s:/images:ro' % CLOUD_IMAGE,
       '-v', '%s.pub:/root/.ssh/authorized_keys:ro' % key, ref, '/sbin/init')
    try:
        ip = sh('podman', 'inspect', '-f', '{{.NetworkSettings.IPAddress}}', name).stdout.strip()
        cfg = tmp_path / 'ssh_config'
        cfg.write_text('Host *\n  IdentityFile %s\n  StrictHostKeyChecking no\n'
                       '  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n'
                       % key)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ok = sh('ssh', '-F', str(cfg), 'root@' + ip, 'virsh', '-c', 'qemu:///system',
                    'net-info', 'default', check=False, timeout=60)
            if ok.returncode == 0 and 'Active:' in ok.stdout and 'yes' in ok.stdout:
                break
            time.sleep(2)
        else:
            pytest.fail('the container hypervisor did not come up: %s %s'
                        % (ok.stdout, ok.stderr))
        public = open(key + '.pub').read().strip()
        yield {'name': name, 'ip': ip, 'ssh_config': str(cfg), 'key': key, 'public': public}
    finally:
        sh('podman', 'rm', '-f', '-t', '5', name, check=False, timeout=300)


def agent_exec(hv, domain, path, *args):
    """guest-exec inside the container's libvirt (no network traffic to the guest)."""
    cmd = json.dumps({'execute': 'guest-exec', 'arguments': {
        'path': path, 'arg': list(args), 'capture-output': True}})
    out = sh('podman', 'exec', hv['name'], 'virsh', 'qemu-agent-command', domain, cmd).stdout
    pid = json.loads(out)['return']['pid']
    for _attempt in range(60):
        st = json.loads(sh('podman', 'exec', hv['name'], 'virsh', 'qemu-agent-command', domain,
                           json.dumps({'execute': 'guest-exec-status',
                                       'arguments': {'pid': pid}})).stdout)['return']
        if st.get('exited'):
            return base64.b64decode(st.get('out-data', '')).decode()
        time.sleep(1)
    raise AssertionError('guest-exec did not finish')


@pytest.mark.slow
@pytest.mark.cloud
def test_site_third_play_reaches_cloud_guest_through_its_hypervisor(hypervisor, tmp_path):
    digest = sh('sha256sum', os.path.join(CLOUD_IMAGE, 'disk.qcow2')).stdout.split()[0]
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text(yaml.safe_dump({'all': {'children': {'hypervisors': {'hosts': {
        'hv1': {'ansible_host': hypervisor['ip'], 'ansible_user': 'root',
                'ansible_connection': 'ssh',
                'ansible_ssh_common_args': '-F %s' % hypervisor['ssh_config'],
                'ansible_python_interpreter': '/usr/bin/python3'}}}}}}))
    guest = {
        'name': 'cloud-web1', 'memory': '768MiB', 'vcpus': 1, 'virt_type': 'qemu',
        'os_variant': 'debian12', 'machine': 'q35',
        'kernel': '/images/vmlinuz', 'initrd': '/images/initrd.img',
        'cmdline': 'root=/dev/vda rw console=ttyS0',
        'serial': '/var/lib/libvirt/images/cloud-web1.log', 'graphics': {'type': 'none'},
        'networks': [{'network': 'default'}],
        'disks': [{'path': '/var/lib/libvirt/images/cloud-web1.qcow2', 'size': 4,
                   'base_image': {'url': '/images/disk.qcow2', 'checksum': 'sha256:' + digest}}],
        'cloud_init': {'hostname': 'web1', 'ssh_authorized_keys': [hypervisor['public']]},
        'wait_for': 'ssh', 'wait_timeout': TIMEOUT,
    }
    with open(os.path.join(paths.REPO, 'playbooks', 'site.yml')) as f:
        third = yaml.safe_load(f)[-1]
    assert third['hosts'] == 'kvmops_new_guests'
    play = [
        {'name': 'guests on the container hypervisor', 'hosts': 'hypervisors',
         'gather_facts': False, 'roles': [{'role': 'kvmops.hypervisor.guests', 'vars': {
             'guests_list': [guest], 'guests_summary': False,
             'guests_guest_ssh_args': '-F %s' % hypervisor['ssh_config']}}]},
        third,
    ]
    path = tmp_path / 'site_cloud.yml'
    path.write_text(yaml.safe_dump(play))
    out = run_playbook(str(path), inventory=str(inventory), timeout=TIMEOUT + 900,
                       extra_vars={'kvmops_guest_connect_timeout': 600})
    failed = [(t['task']['name'], h, r.get('msg')) for p in out.get('plays', [])
              for t in p['tasks'] for h, r in t['hosts'].items()
              if r.get('failed') or r.get('unreachable')]
    assert out['_rc'] == 0, (failed, out.get('stats'), out['_stderr'][-3000:])
    stats = out['stats']
    assert 'web1' not in stats and 'cloud-web1' in stats, stats
    assert stats['cloud-web1']['failures'] == 0 and stats['cloud-web1']['unreachable'] == 0
    # independent check inside the guest, through the agent of the container's libvirt
    content = agent_exec(hypervisor, 'cloud-web1', '/usr/bin/cat', '/etc/kvmops-guest')
    assert content == 'cloud-web1 built on hv1 by kvmops.hypervisor\n'
    assert agent_exec(hypervisor, 'cloud-web1', '/usr/bin/hostname').strip() == 'web1'
