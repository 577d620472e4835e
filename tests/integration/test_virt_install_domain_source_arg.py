"""install.location tells the installer where its tree is, as virt-install does (issue 14).

The tiny guest plays the installer and prints its /proc/cmdline on the serial console
(KVMOPS-CMDLINE: ..., testbed/tiny_guest_init.sh), then powers off. What the installer got
is read from that console, not from the module's result. The trees are copies of the tiny
RHEL tree under other names: a CentOS 7 .treeinfo (decided by the tree), the same kernel
in a SUSE layout (decided by os_variant through libosinfo or the families), and the plain
tree with os_variant rhel6.10 (method=, the pre-7 argument).
"""
import os
import shutil
import time

import libvirt
import pytest

from support.ansible_run import run_module
from support.http_server import TreeServer
from support.libvirt_helpers import wait_for_state

TREES = '/var/cache/kvmops-testbed/tiny/trees'
INSTALLER_ARGS = 'console=tty0 console=ttyS0,115200 kvmops.installer=1'
# The tiny installer powers off within ~10 s on an idle machine; the bound is for a test bed
# shared by many TCG guests (load 30 on 2 cores was seen).
BOOT_TIMEOUT = 400
CENTOS7_TREEINFO = """[general]
family = CentOS
version = 7
arch = x86_64
[release]
name = CentOS
version = 7
[images-x86_64]
kernel = images/pxeboot/vmlinuz
initrd = images/pxeboot/initrd.img
"""


def _copy_kernel(dest_kernel, dest_initrd):
    src = os.path.join(TREES, 'rhel', 'images', 'pxeboot')
    for rel, dest in (('vmlinuz', dest_kernel), ('initrd.img', dest_initrd)):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(os.path.join(src, rel), dest)


@pytest.fixture
def trees(image_dir):
    root = os.path.join(image_dir, 'trees')
    c7 = os.path.join(root, 'centos7')
    _copy_kernel(c7 + '/images/pxeboot/vmlinuz', c7 + '/images/pxeboot/initrd.img')
    with open(c7 + '/.treeinfo', 'w') as f:
        f.write(CENTOS7_TREEINFO)
    suse = os.path.join(root, 'suse')
    _copy_kernel(suse + '/boot/x86_64/loader/linux', suse + '/boot/x86_64/loader/initrd')
    plain = os.path.join(root, 'plain')
    _copy_kernel(plain + '/images/pxeboot/vmlinuz', plain + '/images/pxeboot/initrd.img')
    srv = TreeServer(root)
    yield srv
    srv.close()


def ok(res):
    assert not res.get('failed'), res.get('msg')
    return res


def console_cmdline(path, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path, errors='replace') as f:
                for line in f:
                    if line.startswith('KVMOPS-CMDLINE: '):
                        return line[len('KVMOPS-CMDLINE: '):].strip()
        time.sleep(0.2)
    raise AssertionError('no KVMOPS-CMDLINE line on the serial console %s' % path)


def args_for(prefix, image_dir, short, location, os_variant, extra_args=INSTALLER_ARGS,
             **more):
    args = {
        'name': prefix + short, 'memory': 256, 'virt_type': 'qemu', 'os_variant': os_variant,
        'disks': [{'path': os.path.join(image_dir, short + '.img'), 'size': 0.02}],
        'networks': [], 'graphics': {'type': 'none'},
        'serial': os.path.join(image_dir, short + '.log'),
        'install': {'location': location, 'extra_args': extra_args,
                    'cache_dir': os.path.join(image_dir, 'cache')},
    }
    args.update(more)
    return args


# (tree, os_variant, argument name, who decides)
CASES = [
    ('centos7/', 'linux', 'inst.repo', ".treeinfo"),
    ('suse/', 'opensuse15.4', 'install', 'os_variant=opensuse15.4'),
    ('plain/', 'rhel6.10', 'method', 'os_variant=rhel6.10'),
]


@pytest.mark.parametrize('tree,os_variant,arg,decided_by', CASES,
                         ids=[c[0].strip('/') for c in CASES])
def test_installer_gets_the_source_argument_on_its_cmdline(
        conn, prefix, image_dir, trees, tree, os_variant, arg, decided_by):
    location = trees.url + tree
    args = args_for(prefix, image_dir, 'src', location, os_variant)
    res = ok(run_module('virt_install_domain', args))
    assert res['install_phase'] == 'started', res['actions']
    assert res['install']['source_argument'] == '%s=%s' % (arg, location)
    assert decided_by in res['install']['source_argument_decided_by']
    dom = conn.lookupByName(args['name'])
    wait_for_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, timeout=BOOT_TIMEOUT)
    # What the installer's kernel really got, from its own /proc/cmdline.
    cmdline = console_cmdline(args['serial'])
    assert cmdline.endswith('%s %s=%s' % (INSTALLER_ARGS, arg, location)), cmdline
    assert cmdline.count(arg + '=') == 1
    ok(run_module('virt_install_domain', dict(args, state='absent')))


def test_extra_args_naming_the_source_win_and_debian_gets_nothing(
        conn, prefix, image_dir, trees):
    # extra_args already name a repo: nothing is added (no second inst.repo).
    own = INSTALLER_ARGS + ' inst.repo=nfs:192.0.2.1:/srv/centos7'
    args = args_for(prefix, image_dir, 'own', trees.url + 'centos7/', 'centos7.0', own)
    res = ok(run_module('virt_install_domain', args))
    assert res['install']['source_argument'] is None
    dom = conn.lookupByName(args['name'])
    wait_for_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, timeout=BOOT_TIMEOUT)
    assert console_cmdline(args['serial']) == own
    ok(run_module('virt_install_domain', dict(args, state='absent')))

    # Debian's netboot initrd asks for its mirror: no argument (the tiny Debian tree).
    srv = TreeServer(TREES)
    try:
        args = args_for(prefix, image_dir, 'deb', srv.url + 'debian', 'debian12')
        res = ok(run_module('virt_install_domain', args))
        assert res['install']['layout'] == 'debian'
        assert res['install']['source_argument'] is None
        dom = conn.lookupByName(args['name'])
        wait_for_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, timeout=BOOT_TIMEOUT)
        assert console_cmdline(args['serial']) == INSTALLER_ARGS
        ok(run_module('virt_install_domain', dict(args, state='absent')))
    finally:
        srv.close()


def test_local_directory_tree_warns_that_the_guest_cannot_reach_it(conn, prefix, image_dir,
                                                                   trees):
    args = args_for(prefix, image_dir, 'dir', os.path.join(image_dir, 'trees', 'centos7'),
                    'centos7.0', state='present')
    res = ok(run_module('virt_install_domain', args, check=True))
    assert any('is a directory on the hypervisor' in w and 'inst.repo' in w
               for w in res.get('warnings', [])), res.get('warnings')
    assert res['install']['source_argument'] is None


def test_vnc_with_serial_console_last_warns(conn, prefix, image_dir, trees):
    """The guide's "stuck after Started D-Bus": VNC, console=ttyS0 last. Define only."""
    args = args_for(prefix, image_dir, 'vnc', trees.url + 'centos7/', 'centos7.0',
                    'console=tty0 console=ttyS0,115200', state='present',
                    graphics={'type': 'vnc', 'listen': '127.0.0.1'})
    res = ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['install_phase'] == 'pending'
    warned = [w for w in res.get('warnings', []) if 'console=ttyS0' in w]
    assert warned and 'console=tty0 last' in warned[0], res.get('warnings')
    # tty0 last: the installer is on VNC, no warning.
    fixed = dict(args, install=dict(args['install'], extra_args='console=ttyS0,115200 console=tty0'))
    res = ok(run_module('virt_install_domain', fixed))
    assert not [w for w in res.get('warnings', []) if 'console=' in w], res.get('warnings')
    # Without graphics (the guide's --graphics none) console=ttyS0 last is right: no warning.
    text = dict(args, graphics={'type': 'none'})
    res = ok(run_module('virt_install_domain', dict(text, name=prefix + 'txt',
                                                    disks=[{'path': os.path.join(
                                                        image_dir, 'txt.img'), 'size': 0.02}])))
    assert not [w for w in res.get('warnings', []) if 'console=' in w], res.get('warnings')
