"""clone_from.seal for real (issue 30): a Debian cloud guest (testbed/images/cloud.*) boots
once (systemd writes its machine-id, cloud-init makes its SSH host keys; its seed plants a
persistent-net rule and a regular /var/lib/dbus/machine-id), is shut down and made a
template; then a sealed linked clone (its own seed, seal: true) and an unsealed full clone
(no cloud_init: it keeps the template's seed) boot until cloud-init has finished and are shut
down. Verified by READING THE IMAGES (qemu-img convert to raw, debugfs on the partitionless
ext4), not by trusting the module: the sealed clone has another machine-id (the one systemd
takes from the clone's UUID), other SSH host keys, no persistent-net rule, a dbus machine-id
that follows /etc/machine-id and a new cloud-init instance; the unsealed clone keeps all of
the template's; the template's image is unchanged (sha256 before and after).

Behind the cloud marker (make cloud-guests): three boots of a systemd guest under TCG.
Traffic rule: the guests have no NIC at all; everything goes through the guest agent
(virtio-serial) and the images."""
import concurrent.futures
import hashlib
import os
import re
import subprocess
import time

import libvirt
import pytest

from support import paths
from support.ansible_run import run_module
from support.guest_agent import agent_command, agent_exec, wait_for_agent

CLOUD_IMAGE = os.path.join(os.environ.get('KVMOPS_CACHE', '/var/cache/kvmops-testbed'),
                           'images', 'cloud')
BOOT_TIMEOUT = int(os.environ.get('KVMOPS_CLOUD_BOOT_TIMEOUT', '1800'))
PLANTED_RULE = ('# planted by the seal test\nSUBSYSTEM=="net", ACTION=="add", '
                'ATTR{address}=="52:54:00:de:ad:01", NAME="eth0"\n')
PLANTED_DBUS_ID = '0123456789abcdef0123456789abcdef\n'
# The test image has no locales package: cloud-init's locale module would fail (status: error).
NO_LOCALE = {'locale': False}
# cloud-init 22.4's default ssh_genkeytypes (Debian 12) includes dsa.
HOST_KEYS = ('ssh_host_rsa_key.pub', 'ssh_host_ecdsa_key.pub', 'ssh_host_ed25519_key.pub',
             'ssh_host_dsa_key.pub')


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def assert_ok(res):
    assert not res.get('failed'), res.get('msg', res)
    return res


@pytest.fixture(scope='module')
def cloud_image():
    subprocess.run([os.path.join(paths.REPO, 'testbed', 'build_debian_image.sh'), 'cloud',
                    '--disk'], check=True, stdout=subprocess.DEVNULL, timeout=1200)
    disk = os.path.join(CLOUD_IMAGE, 'disk.qcow2')
    return {'disk': disk, 'digest': sha256(disk),
            'kernel': os.path.join(CLOUD_IMAGE, 'vmlinuz'),
            'initrd': os.path.join(CLOUD_IMAGE, 'initrd.img')}


class Image(object):
    """A guest's disk read offline: a raw copy (qemu-img convert flattens the backing chain),
    read with debugfs (the image is a partitionless ext4, root=/dev/vda)."""

    def __init__(self, qcow2, workdir):
        self.raw = os.path.join(workdir, os.path.basename(qcow2) + '.raw')
        subprocess.run(['qemu-img', 'convert', '-q', '-f', 'qcow2', '-O', 'raw', qcow2,
                        self.raw], check=True, timeout=600)

    def debugfs(self, request):
        return subprocess.run(['debugfs', '-R', request, self.raw], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, check=True,
                              timeout=120).stdout

    def cat(self, path):
        return self.debugfs('cat %s' % path)

    def kind(self, path):
        """'regular', 'symlink', ... or None when the path does not exist."""
        out = self.debugfs('stat %s' % path)
        m = re.search(r'Type: (\w+)', out)
        return m.group(1) if m else None

    def link(self, path):
        """A symlink's target: a fast link's from stat, a longer one's from its block."""
        m = re.search(r'Fast link dest: "([^"]*)"', self.debugfs('stat %s' % path))
        return m.group(1) if m else (self.cat(path) or None)

    def facts(self):
        return {'machine_id': self.cat('/etc/machine-id').strip(),
                'keys': dict((k, self.cat('/etc/ssh/' + k).strip()) for k in HOST_KEYS),
                'rule': self.kind('/etc/udev/rules.d/70-persistent-net.rules'),
                'dbus': self.kind('/var/lib/dbus/machine-id'),
                'dbus_link': self.link('/var/lib/dbus/machine-id'),
                'instance': self.cat('/var/lib/cloud/data/instance-id').strip(),
                'instance_link': self.link('/var/lib/cloud/instance'),
                'hostname': self.cat('/etc/hostname').strip()}

    def remove(self):
        os.unlink(self.raw)


def shut_down(conn, name):
    """A clean poweroff (systemctl poweroff through the guest agent), so that the file
    system in the image is consistent when it is read. The test image has no dbus, hence no
    logind: it ignores the ACPI power button, and the agent's guest-shutdown (shutdown +0,
    scheduled through logind) fails."""
    dom = conn.lookupByName(name)
    agent_command(dom, 'guest-exec', {'path': '/usr/bin/systemctl', 'arg': ['poweroff']})
    deadline = time.monotonic() + BOOT_TIMEOUT
    while dom.isActive():
        assert time.monotonic() < deadline, '%s did not shut down' % name
        time.sleep(1)


def boot_until_cloud_init_done(conn, name):
    """The agent answers, then cloud-init status --wait (through the agent: no network)."""
    dom = conn.lookupByName(name)
    wait_for_agent(dom, BOOT_TIMEOUT)
    rc, out, err = agent_exec(dom, '/usr/bin/cloud-init', 'status', '--wait',
                              timeout=BOOT_TIMEOUT)
    if 'done' not in out:
        _rc, long_, _e = agent_exec(dom, '/usr/bin/cloud-init', 'status', '--long')
        _rc, log, _e = agent_exec(dom, '/usr/bin/grep', '-E', 'WARN|ERROR|Traceback|Error',
                                  '/var/log/cloud-init.log')
        raise AssertionError('cloud-init of %s: %s\n%s\n%s' % (name, out, long_, log[-6000:]))


@pytest.mark.slow
@pytest.mark.cloud
def test_a_sealed_clone_is_unique_inside_an_unsealed_one_is_not(conn, prefix, image_dir,
                                                                cloud_image):
    seeds = os.path.join(image_dir, 'seeds')
    tpl = prefix + 'tpl'
    common = dict(memory='768MiB', vcpus=1, virt_type='qemu', os_variant='debian12',
                  machine='q35', graphics={'type': 'none'}, networks=[],
                  shutdown_timeout=BOOT_TIMEOUT)
    tpl_args = dict(
        common, name=tpl, state='running',
        kernel=cloud_image['kernel'], initrd=cloud_image['initrd'],
        cmdline='root=/dev/vda rw console=ttyS0 net.ifnames=0',
        serial=os.path.join(image_dir, 'tpl-console.log'),
        disks=[{'path': os.path.join(image_dir, 'tpl.qcow2'), 'size': 4,
                'base_image': {'url': cloud_image['disk'],
                               'checksum': 'sha256:' + cloud_image['digest'],
                               'cache_dir': os.path.join(image_dir, 'base-cache')}}],
        cloud_init={'hostname': 'tpl', 'seed_dir': seeds,
                    'user_data': dict(NO_LOCALE, write_files=[
                        {'path': '/etc/udev/rules.d/70-persistent-net.rules',
                         'content': PLANTED_RULE},
                        {'path': '/var/lib/dbus/machine-id', 'content': PLANTED_DBUS_ID}])})

    # the template's first boot: machine-id and SSH host keys are made in its image
    started = time.monotonic()
    assert_ok(run_module('virt_install_domain', tpl_args, timeout=BOOT_TIMEOUT + 300))
    boot_until_cloud_init_done(conn, tpl)
    print('template first boot until cloud-init done: %.0f s' % (time.monotonic() - started))
    shut_down(conn, tpl)
    assert_ok(run_module('virt_install_domain', dict(tpl_args, state='stopped', template=True)))
    tpl_image = tpl_args['disks'][0]['path']
    tpl_sum = sha256(tpl_image)
    img = Image(tpl_image, image_dir)
    before = img.facts()
    img.remove()
    assert re.match(r'^[0-9a-f]{32}$', before['machine_id']), before
    assert all(before['keys'][k].startswith(('ssh-', 'ecdsa-')) for k in HOST_KEYS[:3]), before
    assert before['rule'] == 'regular' and before['dbus'] == 'regular'
    assert before['instance'] == 'iid-' + tpl, before
    assert before['instance_link'].endswith('/instances/iid-' + tpl), before

    # a sealed linked clone (its own seed) and an unsealed full clone, in one task
    sealed, plain = prefix + 'sealed', prefix + 'plain'
    guests = [
        dict(name=sealed, clone_from={'name': tpl, 'mode': 'linked', 'seal': True},
             serial=os.path.join(image_dir, 'sealed-console.log'),
             cloud_init={'hostname': 'sealed', 'seed_dir': seeds, 'user_data': NO_LOCALE}),
        dict(name=plain, clone_from={'name': tpl, 'mode': 'full'},
             serial=os.path.join(image_dir, 'plain-console.log')),
    ]
    started = time.monotonic()
    res = assert_ok(run_module('virt_install_domains', {
        'defaults': {'state': 'running', 'shutdown_timeout': BOOT_TIMEOUT},
        'guests': guests, 'parallel': 2}, timeout=BOOT_TIMEOUT + 300))
    by_name = dict((r['name'], r) for r in res['guests'])
    assert by_name[sealed]['clone']['seal']['method'] == 'cloud-init first boot'
    assert by_name[plain]['clone']['seal'] is None
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda n: boot_until_cloud_init_done(conn, n), (sealed, plain)))
    print('two clones booted until cloud-init done: %.0f s' % (time.monotonic() - started))
    uuids = dict((n, conn.lookupByName(n).UUIDString()) for n in (sealed, plain))
    for n in (sealed, plain):
        shut_down(conn, n)

    facts = {}
    for name, res_ in by_name.items():
        img = Image(res_['clone']['disks'][0]['path'], image_dir)
        facts[name] = img.facts()
        img.remove()
    s, p = facts[sealed], facts[plain]
    print('template %s, sealed %s (UUID %s), unsealed %s'
          % (before['machine_id'], s['machine_id'], uuids[sealed], p['machine_id']))

    # the sealed clone: unique inside
    assert re.match(r'^[0-9a-f]{32}$', s['machine_id']) and s['machine_id'] != before['machine_id']
    assert s['machine_id'] == uuids[sealed].replace('-', '')   # systemd: the VM's UUID
    for k in HOST_KEYS:
        if before['keys'][k]:
            assert s['keys'][k] and s['keys'][k] != before['keys'][k], k
    assert s['rule'] is None                                    # persistent-net rule gone
    assert s['dbus'] == 'symlink' and s['dbus_link'] == '/etc/machine-id'
    assert s['instance'] == 'iid-' + sealed and s['hostname'] == 'sealed'
    assert s['instance_link'].endswith('/instances/iid-' + sealed)
    # the unsealed clone: the template's identity, byte for byte
    assert p['machine_id'] == before['machine_id'] and p['keys'] == before['keys']
    assert p['rule'] == 'regular' and p['dbus'] == 'regular'
    assert p['instance'] == before['instance'] and p['hostname'] == 'tpl'
    # the template's image was never written
    assert sha256(tpl_image) == tpl_sum

    # cleanup through the module: the clones first (a template with linked clones stays)
    for name in (sealed, plain):
        assert_ok(run_module('virt_install_domain', dict(name=name, state='absent',
                                                         remove_storage=True)))
    assert not os.path.exists(os.path.join(seeds, sealed))
    assert os.path.exists(os.path.join(seeds, tpl, 'cidata.iso'))
    assert sha256(tpl_image) == tpl_sum
    try:
        conn.lookupByName(sealed)
        pytest.fail('the sealed clone is still defined')
    except libvirt.libvirtError:
        pass
