"""SELinux enforcing, for real (issue 16): the collection's modules inside a Debian 12 guest
whose kernel enforces SELinux (this host's kernel cannot enable it).

The guest (testbed/images/selinux.*: selinux-policy-default, the tree labelled at build time,
SELINUX=enforcing, booted with enforcing=1) runs under TCG from a qcow2 overlay of the cached
image, with no NIC: Ansible reaches it only through the QEMU guest agent, with
community.libvirt's libvirt_qemu connection (guest-exec and guest-file-*: no network
traffic). The modules run there as root in the agent's domain (initrc_t, unconfined under
this policy, as an administrator's root shell is), so what is checked is the kernel's and the
policy store's answer, not a simulator's: labels with `ls -Z` and matchpathcon, booleans with
getsebool after a reboot, and the permission preflight reading real labels before libvirt (in
the guest) defines anything.

`make selinux-enforcing` builds the image (cached by recipe) and runs only this suite.
"""
import json
import os
import shutil
import subprocess
import uuid

import libvirt
import pytest

from support import paths, testbed_lock
from support.ansible_run import run_module
from support.guest_agent import agent_command, agent_exec, wait_for_agent
from support.libvirt_helpers import remove_everything_named, tiny_guest_xml, wait_for_state

pytestmark = [pytest.mark.slow, pytest.mark.selinux]

IMAGE = os.path.join(os.environ.get('KVMOPS_CACHE', '/var/cache/kvmops-testbed'), 'images',
                     'selinux')
IMAGE_ROOT = '/var/lib/libvirt/images/kvmops-tests'
BOOT_TIMEOUT = int(os.environ.get('KVMOPS_SELINUX_BOOT_TIMEOUT', '1200'))
CMDLINE = 'root=/dev/vda rw console=ttyS0 security=selinux selinux=1 enforcing=1'
DEVICES = """
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file='{overlay}'/><target dev='vda' bus='virtio'/>
    </disk>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
"""


class Guest(object):
    """The module's guest. Its domain is looked up on every use: the session connection
    reopens itself when another session restarted libvirtd between two tests."""

    def __init__(self, conn, name, inventory):
        self._conn = conn
        self.name = name
        self.inventory = inventory
        self.boot_seconds = None
        self.booted = None

    @property
    def dom(self):
        return self._conn.lookupByName(self.name)


@pytest.fixture(scope='module')
def guest(conn, tmp_path_factory):
    """One enforcing guest for the module: domain and overlay removed afterwards."""
    subprocess.run([os.path.join(paths.REPO, 'testbed', 'build_debian_image.sh'), 'selinux',
                    '--disk'], check=True, stdout=subprocess.DEVNULL, timeout=1800)
    prefix = 'kvmops-t-selinux-%s-' % uuid.uuid4().hex[:6]
    workdir = os.path.join(IMAGE_ROOT, prefix.rstrip('-'))
    inventory = tmp_path_factory.mktemp('selinux') / 'inventory.json'
    g = Guest(conn, prefix + 'vm', str(inventory))
    inventory.write_text(json.dumps({'all': {'hosts': {g.name: {
        'ansible_connection': 'community.libvirt.libvirt_qemu',
        'ansible_libvirt_uri': paths.URI,
        'ansible_python_interpreter': '/usr/bin/python3',
        # The agent runs commands without HOME: `echo ~` stays '~', so give Ansible an
        # absolute remote temporary directory.
        'ansible_remote_tmp': '/root/.ansible/tmp',
    }}}}))
    # The test-bed lock (shared) only while booting and while cleaning up: each test holds
    # its own (daemon_lock). Held for the whole module, it would deadlock with a writer
    # queued at the turnstile when the next test asks for its shared lock.
    lock = testbed_lock.acquire_shared()
    try:
        os.makedirs(workdir, mode=0o755)
        os.chmod(IMAGE_ROOT, 0o755)
        overlay = os.path.join(workdir, 'overlay.qcow2')
        # The cached image is only ever a read-only backing file: it stays pristine.
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b',
                        os.path.join(IMAGE, 'disk.qcow2'), overlay], check=True, timeout=60)
        xml = tiny_guest_xml(g.name, {'kernel': os.path.join(IMAGE, 'vmlinuz'),
                                      'initrd': os.path.join(IMAGE, 'initrd.img')},
                             os.path.join(workdir, 'console.log'), memory=1024,
                             cmdline=CMDLINE, devices=DEVICES.format(overlay=overlay))
        conn.defineXML(xml).create()
        g.boot_seconds = wait_for_agent(g.dom, BOOT_TIMEOUT)
        g.booted = wait_booted(g.dom)
    except BaseException:
        remove_everything_named(conn, prefix)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        testbed_lock.release(lock)
    yield g
    lock = testbed_lock.acquire_shared()
    try:
        remove_everything_named(conn, prefix)
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        testbed_lock.release(lock)


def wait_booted(dom):
    """The agent starts before the boot ends (libvirtd's socket, auditd): wait for the end;
    systemd's verdict (running, degraded)."""
    return agent_exec(dom, '/usr/bin/systemctl', 'is-system-running', '--wait',
                      timeout=BOOT_TIMEOUT)[1].strip()


def sh(guest, script, timeout=120):
    """Run a shell script in the guest through the agent; its stdout (rc 0 asserted)."""
    rc, out, err = agent_exec(guest.dom, '/bin/sh', '-c', script, timeout=timeout)
    assert rc == 0, 'guest: %s -> rc=%s\n%s\n%s' % (script, rc, out, err)
    return out


def in_guest(guest, module, args, check=False, diff=False):
    return run_module(module, args, check=check, diff=diff, host=guest.name,
                      inventory=guest.inventory, timeout=900)


def ok(res):
    assert not res.get('failed'), res.get('msg', res)
    return res


def label(guest, path):
    """`ls -dZ path` in the guest: the context the kernel reports."""
    return sh(guest, 'ls -dZ %s' % path).split()[0]


def setype(context):
    return context.split(':')[2]


def test_guest_enforces_selinux(guest):
    print('\nboot to guest agent: %.0f s' % guest.boot_seconds)
    # every unit started under the enforcing policy (no failed unit: the image is sane)
    assert guest.booted == 'running', sh(guest, 'systemctl --failed --no-legend')
    assert sh(guest, 'getenforce').strip() == 'Enforcing'
    assert sh(guest, 'cat /sys/fs/selinux/enforce').strip() == '1'
    assert 'enforcing=1' in sh(guest, 'cat /proc/cmdline')
    # the tree was labelled at build time: no unlabelled system file, journald up
    assert setype(label(guest, '/etc/shadow')) == 'shadow_t'
    assert setype(label(guest, '/etc/machine-id')) != 'unlabeled_t'
    assert sh(guest, 'systemctl is-active systemd-journald || true').strip() == 'active'
    # denials the kernel logged were enforced, none merely reported
    assert 'permissive=1' not in sh(guest, 'dmesg | grep "avc:  denied" || true')


def test_selinux_virt_dir_labels_a_custom_image_directory_on_the_real_kernel(guest):
    sh(guest, 'mkdir -p /vm-images && touch /vm-images/guest1.img')
    before = sh(guest, 'ls -dZ /vm-images /vm-images/guest1.img')
    assert 'virt_image_t' not in before
    args = {'path': '/vm-images'}

    # check mode: reports the change, changes nothing
    res = ok(in_guest(guest, 'selinux_virt_dir', args, check=True, diff=True))
    assert res['changed'] and res['selinux'] == 'enforcing'
    assert res['semanage_commands'] == ["fcontext -a -f a -t virt_image_t '/vm-images(/.*)?'"]
    assert sh(guest, 'ls -dZ /vm-images /vm-images/guest1.img') == before
    assert '/vm-images' not in sh(guest, 'semanage fcontext -l -C')

    # the real run: the rule, then restorecon on the enforcing kernel
    res = ok(in_guest(guest, 'selinux_virt_dir', args))
    assert res['changed'] and res['rule_source'] == 'local'
    assert set(res['relabelled']) == {'/vm-images', '/vm-images/guest1.img'}
    assert setype(label(guest, '/vm-images')) == 'virt_image_t'
    assert setype(label(guest, '/vm-images/guest1.img')) == 'virt_image_t'
    # the kernel's label agrees with the store's answer, for existing and future files
    mpc = sh(guest, 'matchpathcon /vm-images /vm-images/guest1.img /vm-images/new.qcow2')
    assert mpc.count('virt_image_t') == 3, mpc
    assert res['matchpathcon'] == label(guest, '/vm-images')
    local = sh(guest, 'semanage fcontext -l -C')
    assert '/vm-images(/.*)?' in local and 'virt_image_t' in local
    # a file created there now gets the type from the kernel's inheritance, not from us
    sh(guest, 'touch /vm-images/guest2.img')
    assert setype(label(guest, '/vm-images/guest2.img')) == 'virt_image_t'

    res = ok(in_guest(guest, 'selinux_virt_dir', args))
    assert not res['changed'] and res['relabelled_count'] == 0

    # a file moved in keeps its old label (mv): a re-run relabels it and says so
    sh(guest, 'touch /root/moved.img && mv /root/moved.img /vm-images/moved.img')
    assert setype(label(guest, '/vm-images/moved.img')) != 'virt_image_t'
    res = ok(in_guest(guest, 'selinux_virt_dir', args))
    assert res['changed'] and res['relabelled'] == ['/vm-images/moved.img']
    assert setype(label(guest, '/vm-images/moved.img')) == 'virt_image_t'

    # state absent: the rule goes, the directory is relabelled back, the files stay
    res = ok(in_guest(guest, 'selinux_virt_dir', dict(args, state='absent')))
    assert res['changed'] and res['rule'] is None
    assert '/vm-images' not in sh(guest, 'semanage fcontext -l -C')
    assert setype(label(guest, '/vm-images')) == setype(
        sh(guest, 'matchpathcon /vm-images').split()[1]) != 'virt_image_t'
    assert sh(guest, 'ls /vm-images').split() == ['guest1.img', 'guest2.img', 'moved.img']
    assert not ok(in_guest(guest, 'selinux_virt_dir', dict(args, state='absent')))['changed']


def test_booleans_set_by_the_module_persist_across_a_reboot(guest):
    dom = guest.dom
    sh(guest, 'setsebool -P virt_use_nfs off && setsebool -P virt_use_samba off')
    args = {'path': '/srv/nfs-images', 'booleans': {'virt_use_nfs': True, 'virt_use_samba': True}}
    res = ok(in_guest(guest, 'selinux_virt_dir', args))
    assert res['changed']
    for boolean in ('virt_use_nfs', 'virt_use_samba'):
        assert (res['booleans'][boolean]['before'], res['booleans'][boolean]['after']) == (
            False, True)
    assert sh(guest, 'getsebool virt_use_nfs virt_use_samba').split('\n')[:2] == [
        'virt_use_nfs --> on', 'virt_use_samba --> on']

    # A power cycle (the running booleans are gone, only the store's survive), started
    # through the agent. Not guest-shutdown: qemu-ga runs `shutdown -h -P +0`, which asks
    # logind to schedule it, and Debian 12's policy denies logind the schedule file
    # ("Failed to schedule shutdown: Access denied"); systemctl poweroff goes to systemd.
    sh(guest, 'sync')
    agent_command(dom, 'guest-exec', {'path': '/usr/bin/systemctl', 'arg': ['poweroff']})
    wait_for_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, timeout=BOOT_TIMEOUT)
    dom.create()
    wait_for_agent(dom, BOOT_TIMEOUT)
    wait_booted(dom)
    assert sh(guest, 'getenforce').strip() == 'Enforcing'
    assert sh(guest, 'getsebool virt_use_nfs virt_use_samba').split('\n')[:2] == [
        'virt_use_nfs --> on', 'virt_use_samba --> on']
    # the module sees the persisted state: nothing to do
    assert not ok(in_guest(guest, 'selinux_virt_dir', args))['changed']


def alice_vm(cdrom):
    return {'name': 'alice-vm', 'memory': 256, 'vcpus': 1, 'virt_type': 'qemu',
            'os_variant': 'linux', 'graphics': {'type': 'none'}, 'networks': [],
            'disks': [{'path': '/var/lib/libvirt/images/alice-vm.qcow2', 'size': 1}],
            'install': {'cdrom': cdrom}}


def test_preflight_reports_a_wrongly_labelled_iso_in_a_home_directory(guest):
    # a real ISO (the tiny guest's), copied in over the agent, in alice's home; her home is
    # world-searchable, so only the SELinux label stands in QEMU's way
    sh(guest, 'id alice >/dev/null 2>&1 || useradd -m alice; chmod 0755 /home/alice')
    ok(in_guest(guest, 'ansible.builtin.copy', {
        'src': os.path.join(paths.ASSETS, 'tiny.iso'), 'dest': '/home/alice/install.iso',
        'owner': 'alice', 'mode': '0644'}))
    sh(guest, 'restorecon -v /home/alice/install.iso')
    assert setype(label(guest, '/home/alice/install.iso')) == 'user_home_t'
    nothing = ('python3 -c "import libvirt; print([d.name() for d in '
               'libvirt.open(\'qemu:///system\').listAllDomains()])"; '
               'ls /var/lib/libvirt/images/ /etc/libvirt/qemu/ | grep alice || true')

    res = in_guest(guest, 'virt_install_domain', alice_vm('/home/alice/install.iso'))
    assert res.get('failed'), res
    msg = res['msg']
    assert 'SELinux is enabled' in msg and 'user_home_t' in msg, msg
    assert '/home/alice/install.iso' in msg and 'install.cdrom' in msg
    # the fix: move it (and relabel: mv keeps the label), never relabel alice's home
    assert '/var/lib/libvirt/boot' in msg and 'restorecon -v' in msg
    assert "'/home/alice(/.*)?'" not in msg and 'Do not label /home/alice itself' in msg
    # nothing was defined, no disk image was created (libvirtd in the guest answered)
    assert sh(guest, nothing).split() == ['[]']

    # following the hint: mv alone keeps user_home_t and is reported again ...
    sh(guest, 'mkdir -p /var/lib/libvirt/boot && mv /home/alice/install.iso '
              '/var/lib/libvirt/boot/install.iso')
    assert setype(label(guest, '/var/lib/libvirt/boot/install.iso')) == 'user_home_t'
    res = in_guest(guest, 'virt_install_domain', alice_vm('/var/lib/libvirt/boot/install.iso'),
                   check=True)
    assert res.get('failed') and 'user_home_t' in res['msg'], res
    # ... restorecon gives it the policy's type, and the preflight lets it through
    sh(guest, 'restorecon -v /var/lib/libvirt/boot/install.iso')
    assert setype(label(guest, '/var/lib/libvirt/boot/install.iso')) == 'virt_content_t'
    res = ok(in_guest(guest, 'virt_install_domain',
                      alice_vm('/var/lib/libvirt/boot/install.iso'), check=True))
    assert res['changed']
    assert sh(guest, nothing).split() == ['[]']
