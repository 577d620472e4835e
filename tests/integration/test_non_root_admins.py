"""Non-root admins (the guide inventory's `ansible_user: admin`), for real over SSH.

A private sshd on 127.0.0.1 (tests/support/sshd.py, as in test_roles_vnc_tunnels.py) and a
local account this test creates and removes (unique name). kvm_host adds the account to the
libvirt group; as a libvirt-group member, without become, the modules that talk to libvirt
over qemu:///system and playbooks/vnc_tunnels.yml work; with become (sudo), every module does,
also those that edit root's files (qemu.conf, the SELinux store, images in root's directories).
"""
import json
import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from support import containers, paths
from support.ansible_run import run_playbook
from support.sshd import SSHD, private_sshd, ssh_vars

VNC_TUNNELS = os.path.join(paths.REPO, 'playbooks', 'vnc_tunnels.yml')
DEMO_INVENTORY = os.path.join(paths.REPO, 'inventories', 'demo')
# A new SSH login per task: group membership is read at login, and no master connection
# outlives the test's account.
NO_CONTROL = {'ANSIBLE_SSH_ARGS': '-o ControlMaster=no -o ControlPath=none'}
OFFSET = 21000
# no_timer_check: on a heavily loaded host TCG is so slow that the kernel's IO-APIC timer
# check fails and it panics (seen at load 30 on 2 cores).
TINY_CMDLINE = 'console=ttyS0 no_timer_check'
BOOT = '/var/lib/libvirt/boot'


def sh(*argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)


def groups_of(user):
    return sh('id', '-nG', user).stdout.split()


@pytest.fixture
def admin():
    """A fresh local account (shell, home, no password) removed afterwards with its sudoers file."""
    name = 'kvmops-adm-' + uuid.uuid4().hex[:6]
    sudoers = '/etc/sudoers.d/' + name
    subprocess.check_call(['useradd', '-m', '-s', '/bin/sh', name])
    try:
        subprocess.check_call(['usermod', '-p', '*', name])   # not locked: sshd with UsePAM no
        yield {'name': name, 'sudoers': sudoers}
    finally:
        if os.path.exists(sudoers):
            os.unlink(sudoers)
        sh('userdel', '-f', '-r', name)
        assert sh('getent', 'passwd', name).returncode != 0


@pytest.fixture
def sshd():
    if not os.access(SSHD, os.X_OK):
        pytest.skip('openssh-server is not installed')
    with private_sshd() as daemon:
        yield daemon


def write(path, data):
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


def ssh_inventory(path, sshd, user, **host_vars):
    host = dict(ssh_vars(sshd, user), ansible_python_interpreter=paths.TARGET_PYTHON)
    host.update(host_vars)
    return write(path, {'hypervisors': {'hosts': {'hv1': host}}})


def play(tasks, become=False):
    return [{'hosts': 'hypervisors', 'gather_facts': False, 'become': become, 'tasks': tasks}]


def results(doc, host='hv1'):
    out = {}
    for p in doc['plays']:
        for t in p['tasks']:
            out[t['task']['name'].split(' : ')[-1]] = t['hosts'].get(host, {})
    return out


def rfb_banner(port):
    with socket.create_connection(('127.0.0.1', port), 5) as s:
        s.settimeout(10)
        return s.recv(12)


def tunnel_pids(forward):
    out = sh('pgrep', '-a', '-x', 'ssh').stdout
    return [line.split()[0] for line in out.splitlines() if ' -L %s ' % forward in line]


def test_kvm_host_adds_existing_admins_to_the_libvirt_group(admin, tmp_path):
    user = admin['name']
    role = {'role': 'kvmops.hypervisor.kvm_host', 'kvm_host_libvirt_users': [user],
            # only the users step matters here
            'kvm_host_manage_packages': False, 'kvm_host_vnc_manage': False,
            'kvm_host_default_network': False, 'kvm_host_manage_kvm_device': False}
    playbook = write(str(tmp_path / 'users.yml'),
                     [{'hosts': 'hypervisors', 'gather_facts': True, 'gather_subset': ['min'], 'roles': [role]}])

    doc = run_playbook(playbook, inventory=DEMO_INVENTORY, check=True)
    assert doc['_rc'] == 0, doc['_stderr'][-2000:]
    assert results(doc, 'localhost')['Add the admins to the libvirt group (effective at their next login)']['changed']
    assert 'libvirt' not in groups_of(user)        # check mode changed nothing

    doc = run_playbook(playbook, inventory=DEMO_INVENTORY)
    assert doc['_rc'] == 0 and doc['stats']['localhost']['changed'] == 1, doc['stats']
    assert 'libvirt' in groups_of(user)
    doc = run_playbook(playbook, inventory=DEMO_INVENTORY)
    assert doc['_rc'] == 0 and doc['stats']['localhost']['changed'] == 0, doc['stats']

    # A name without an account fails and creates nothing.
    missing = user + 'x'
    role['kvm_host_libvirt_users'] = [user, missing]
    write(playbook, [{'hosts': 'hypervisors', 'gather_facts': True, 'gather_subset': ['min'], 'roles': [role]}])
    doc = run_playbook(playbook, inventory=DEMO_INVENTORY)
    assert doc['_rc'] != 0
    failed = results(doc, 'localhost')['Stop when a libvirt admin has no account']
    assert failed.get('failed') and missing in failed['msg'] and 'no account' in failed['msg']
    assert sh('getent', 'passwd', missing).returncode != 0


def test_a_libvirt_group_member_uses_the_modules_and_vnc_tunnels_without_root(tmp_path):
    """In a libvirt host container: this machine's libvirtd cannot serve non-root users.

    libvirt lets libvirt-group members in through polkit (Debian's 60-libvirt.rules), which
    needs polkitd on the system D-Bus. The test bed's PID 1 is not systemd and runs no system
    bus, so the shared libvirtd refuses every non-root read-write connection here. The
    container (testbed/images/libvirthost.packages) is a real host in that respect: systemd,
    D-Bus, polkitd, libvirtd, sshd. Ansible reaches it over SSH at its podman address.
    """
    if not shutil.which('podman'):
        pytest.skip('podman is not installed (testbed/setup_podman.sh installs it)')
    user = 'kvmops-adm-' + uuid.uuid4().hex[:6]
    key = str(tmp_path / 'key')
    subprocess.check_call(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key])
    with containers.running(containers.image('libvirthost'), 'kvmops-t-adm-') as name:
        host = containers.address(name)
        for argv in (['useradd', '-m', '-s', '/bin/sh', user], ['usermod', '-p', '*', user],
                     ['install', '-d', '-m', '0700', '-o', user, '/home/%s/.ssh' % user],
                     ['mkdir', '-p', BOOT]):
            assert containers.podman_exec(name, *argv).returncode == 0, argv
        subprocess.check_call(['podman', 'cp', key + '.pub', '%s:/home/%s/.ssh/authorized_keys' % (name, user)])
        containers.podman_exec(name, 'chown', user, '/home/%s/.ssh/authorized_keys' % user)
        for f in ('vmlinuz', 'initrd.img'):
            subprocess.check_call(['podman', 'cp', os.path.join(paths.ASSETS, f), '%s:%s/%s' % (name, BOOT, f)])
        for argv in (['virsh', 'pool-define-as', 'images', 'dir', '--target', '/var/lib/libvirt/images'],
                     ['virsh', 'pool-start', 'images']):
            assert containers.podman_exec(name, *argv).returncode == 0, argv

        # What kvm_host_libvirt_users does (the role itself: the first test, on this machine;
        # through the podman connection it costs ~40 s here)
        assert containers.podman_exec(name, 'usermod', '-a', '-G', 'libvirt', user).returncode == 0

        inventory = write(str(tmp_path / 'inventory.json'), {'hypervisors': {'hosts': {'hv1': {
            'ansible_host': host, 'ansible_user': user, 'ansible_ssh_private_key_file': key,
            'ansible_python_interpreter': '/usr/bin/python3',
            'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null '
                                       '-o LogLevel=ERROR'}}}})
        guest = 'kvmops-adm-guest'
        domain = {'name': guest, 'memory': 256, 'virt_type': 'qemu', 'os_variant': 'linux',
                  'kernel': BOOT + '/vmlinuz', 'initrd': BOOT + '/initrd.img', 'cmdline': TINY_CMDLINE,
                  'serial': '/var/lib/libvirt/images/serial.log', 'networks': [],
                  'graphics': {'type': 'vnc', 'listen': '127.0.0.1'},
                  'disks': [{'pool': 'images', 'volume': 'adm.img', 'size': 0.1}], 'state': 'running'}
        doc = run_playbook(write(str(tmp_path / 'member.yml'), play([
            {'name': 'whoami', 'ansible.builtin.command': 'id -un', 'changed_when': False},
            {'name': 'facts', 'kvmops.hypervisor.kvm_capability_facts': {}},
            {'name': 'guest check', 'kvmops.hypervisor.virt_install_domain': domain, 'check_mode': True},
            {'name': 'guest', 'kvmops.hypervisor.virt_install_domain': domain},
            {'name': 'guest again', 'kvmops.hypervisor.virt_install_domain': domain},
            {'name': 'vnc of the guest', 'kvmops.hypervisor.vnc_listen': {
                'scope': 'domains', 'domains': [guest], 'listen': '127.0.0.1'}},
        ])), inventory=inventory, env=NO_CONTROL)
        r = results(doc)
        assert doc['_rc'] == 0, json.dumps({k: v.get('msg') for k, v in r.items() if v.get('failed')})
        assert r['whoami']['stdout'] == user                 # really not root, no become
        assert r['facts']['ansible_facts']['kvm_capability']['libvirt']['connected'] is True
        assert r['guest check']['changed'] and r['guest']['changed']
        assert r['guest again']['changed'] is False
        assert r['vnc of the guest']['changed'] is False     # it already listens on 127.0.0.1
        state = containers.podman_exec(name, 'virsh', 'domstate', guest).stdout
        assert 'running' in state, state                    # verified independently, as root
        deadline = time.monotonic() + 90
        while containers.podman_exec(name, 'grep', '-q', 'KVMOPS-TINY-GUEST BOOTED',
                                     '/var/lib/libvirt/images/serial.log').returncode != 0:
            assert time.monotonic() < deadline, 'the guest did not boot'
            time.sleep(1)

        # vnc_tunnels.yml: play 1 asks libvirt over SSH as the member, play 2 tunnels through
        # the container's sshd to its 127.0.0.1:5900 (where the guest's VNC listens)
        local = 5900 + OFFSET
        forward = '127.0.0.1:%d:127.0.0.1:5900' % local
        extra = {'vnc_tunnels_port_offset': OFFSET,
                 'vnc_tunnels_ssh_args': ['-i', key, '-o', 'StrictHostKeyChecking=no',
                                          '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR']}
        try:
            doc = run_playbook(VNC_TUNNELS, inventory=inventory, extra_vars=extra, env=NO_CONTROL)
            assert doc['_rc'] == 0, json.dumps(doc['stats']) + doc['_stderr'][-3000:]
            assert len(tunnel_pids(forward)) == 1
            assert rfb_banner(local).startswith(b'RFB 003.')
            doc = run_playbook(VNC_TUNNELS, inventory=inventory, env=NO_CONTROL,
                               extra_vars=dict(extra, vnc_tunnels_state='absent'))
            assert doc['_rc'] == 0 and doc['stats']['localhost']['changed'] == 1
        finally:
            deadline = time.monotonic() + 10
            while tunnel_pids(forward) and time.monotonic() < deadline:
                time.sleep(0.1)
            for pid in tunnel_pids(forward):
                subprocess.call(['kill', pid])
        assert tunnel_pids(forward) == []

        # removing the guest and its volume, as the member
        gone = dict(domain, state='absent', remove_storage=True)
        doc = run_playbook(write(str(tmp_path / 'absent.yml'), play([
            {'name': 'absent', 'kvmops.hypervisor.virt_install_domain': gone}])),
            inventory=inventory, env=NO_CONTROL)
        assert doc['_rc'] == 0 and results(doc)['absent']['changed'], results(doc)
        assert containers.podman_exec(name, 'virsh', 'domstate', guest).returncode != 0


def test_with_become_every_module_works_and_without_it_the_errors_say_so(
        admin, sshd, conn, prefix, image_dir, tiny, tmp_path):
    """Not in the libvirt group; sudo without password, as on the guide's hosts."""
    user = admin['name']
    with open(admin['sudoers'], 'w') as f:
        f.write('%s ALL=(ALL) NOPASSWD: ALL\n' % user)
    os.chmod(admin['sudoers'], 0o440)
    guest = prefix + 'root'
    domain = {'name': guest, 'memory': 256, 'virt_type': 'qemu', 'os_variant': 'linux',
              'kernel': tiny['kernel'], 'initrd': tiny['initrd'], 'cmdline': TINY_CMDLINE,
              'networks': [], 'graphics': {'type': 'none'}, 'state': 'present',
              'disks': [{'path': os.path.join(image_dir, 'root.img'), 'size': 0.1}]}
    inventory = ssh_inventory(str(tmp_path / 'inventory.json'), sshd, user)
    qemu_conf = open('/etc/libvirt/qemu.conf', 'rb').read()
    tasks = [
        {'name': 'whoami', 'ansible.builtin.command': 'id -un', 'changed_when': False},
        {'name': 'facts', 'kvmops.hypervisor.kvm_capability_facts': {}},
        {'name': 'qemu.conf', 'kvmops.hypervisor.vnc_listen': {'listen': '127.0.0.1'},
         'check_mode': True},
        {'name': 'selinux', 'kvmops.hypervisor.selinux_virt_dir': {'path': image_dir},
         'check_mode': True},
        {'name': 'guest', 'kvmops.hypervisor.virt_install_domain': domain},
        {'name': 'guest again', 'kvmops.hypervisor.virt_install_domain': domain},
        {'name': 'absent', 'kvmops.hypervisor.virt_install_domain':
            dict(domain, state='absent', remove_storage=True)},
    ]
    doc = run_playbook(write(str(tmp_path / 'become.yml'), play(tasks, become=True)),
                       inventory=inventory, env=NO_CONTROL)
    r = results(doc)
    assert doc['_rc'] == 0, json.dumps({k: v.get('msg') for k, v in r.items() if v.get('failed')})
    assert r['whoami']['stdout'] == 'root'
    assert r['facts']['ansible_facts']['kvm_capability']['libvirt']['connected'] is True
    assert not r['qemu.conf'].get('failed') and not r['selinux'].get('failed')
    assert r['guest']['changed'] and r['guest again']['changed'] is False and r['absent']['changed']
    assert guest not in [d.name() for d in conn.listAllDomains()]
    assert open('/etc/libvirt/qemu.conf', 'rb').read() == qemu_conf

    # The same user without become and outside the libvirt group: handled errors that say why.
    doc = run_playbook(write(str(tmp_path / 'plain.yml'), play([
        dict(t, ignore_errors=True) for t in tasks if t['name'] in ('guest', 'qemu.conf')])),
        inventory=inventory, env=NO_CONTROL)
    r = results(doc)
    assert r['guest'].get('failed') and 'may this user connect' in r['guest']['msg'], r['guest']
    assert r['qemu.conf'].get('failed') and 'become' in r['qemu.conf']['msg'], r['qemu.conf']
    for res in r.values():
        assert 'Traceback' not in json.dumps(res)
    assert guest not in [d.name() for d in conn.listAllDomains()]
    assert not os.path.exists(os.path.join(image_dir, 'root.img'))
