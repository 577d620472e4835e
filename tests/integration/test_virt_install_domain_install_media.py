"""virt_install_domain's other install sources against the real libvirtd: a CD-ROM (the tiny
installer ISO; the guide's Windows command, define only), an imported image, PXE; and bad
install input, refused before anything exists. install.location: test_virt_install_domain_install.py.

The tiny guest plays the installer (see tests/support/install_guests.py). Verification goes
through libvirt-python, the disk files and the serial log, not the module.
"""
import os
import subprocess

import libvirt
import pytest

from support.ansible_run import run_module
from support.install_guests import (
    TREES, assert_final_running_from_disk, check_rerun_unchanged, guest_args, inactive, live,
    lookup, marker, ok, record)


# ------------------------------------------------------------------------------ cdrom

def test_cdrom_install_then_the_cd_is_gone(conn, prefix, image_dir, tiny, recorders):
    args = guest_args(prefix, image_dir, 'cd', {'cdrom': tiny['iso'], 'wait': -1})
    rec = recorders(args['serial'])
    res = ok(run_module('virt_install_domain', args))
    assert res['install_phase'] == 'completed', res['actions']
    console = rec.text()
    assert 'kvmops.from=iso kvmops.installer=1' in console        # booted the CD (isolinux)
    assert 'KVMOPS-INSTALL-DONE /dev/vda' in console
    dom = assert_final_running_from_disk(conn, args['name'], args['disks'][0]['path'])
    for tree in (inactive(dom), live(dom)):
        assert tree.find("devices/disk[@device='cdrom']") is None
        assert 'cdrom' not in [b.get('dev') for b in tree.findall('os/boot')]
    check_rerun_unchanged(args)


# ------------------------------------------------------------------------------ import

def test_import_existing_image(conn, prefix, image_dir, tree_server):
    image = os.path.join(image_dir, 'imported.img')
    with open(image, 'wb') as f:
        f.write(b'KVMOPS-IMPORTED-IMAGE\n')
        f.truncate(20 * 1024 * 1024)
    args = guest_args(prefix, image_dir, 'imp', {'import': True})
    args['disks'] = [{'path': image}]
    before = len(tree_server.requests)
    res = ok(run_module('virt_install_domain', args, check=True))
    assert res['changed'] and res['install_phase'] == 'none'
    assert lookup(conn, args['name']) is None

    res = ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['install_phase'] == 'none'
    assert 'started' in res['actions'] and 'started the installer' not in res['actions']
    dom = lookup(conn, args['name'])
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert live(dom).find('os/kernel') is None
    assert record(inactive(dom)) is None
    disks = live(dom).findall("devices/disk[@device='disk']/source")
    assert [d.get('file') for d in disks] == [image]
    assert marker(image).startswith(b'KVMOPS-IMPORTED-IMAGE')   # never overwritten

    for check in (True, False):
        again = ok(run_module('virt_install_domain', args, check=check))
        assert not again['changed'], again['actions']
    assert len(tree_server.requests) == before
    assert marker(image).startswith(b'KVMOPS-IMPORTED-IMAGE')


def test_import_of_a_missing_image_creates_nothing(conn, prefix, image_dir):
    args = guest_args(prefix, image_dir, 'nop', {'import': True})
    res = run_module('virt_install_domain', args)
    assert res.get('failed') and 'does not exist' in res['msg'] and 'import' in res['msg']
    assert lookup(conn, args['name']) is None
    assert not os.path.exists(args['disks'][0]['path'])


# ------------------------------------------------------------------------------ Windows

def test_windows_2012_from_cdrom_define_only(conn, prefix, image_dir):
    """The guide's Windows command (cdrom + VNC + windows) with state=present: no Windows
    media exists here, so this checks the definition, not an install."""
    iso = os.path.join(image_dir, 'win2012.iso')
    src = os.path.join(image_dir, 'isosrc')
    os.makedirs(src)
    with open(os.path.join(src, 'setup.exe'), 'w') as f:
        f.write('not really\n')
    subprocess.check_call(['xorriso', '-as', 'mkisofs', '-quiet', '-o', iso, '-V', 'WIN2012',
                           src], stderr=subprocess.DEVNULL)
    name = prefix + 'windows1'
    args = {
        'name': name, 'state': 'present', 'memory': '2GiB', 'vcpus': 2, 'virt_type': 'qemu',
        'os_variant': 'windows',
        'disks': [{'path': os.path.join(image_dir, 'windows1.img'), 'size': 40}],
        'networks': [{'network': 'default'}],
        'graphics': {'type': 'vnc', 'listen': '127.0.0.1'},
        'install': {'cdrom': iso},
    }
    res = ok(run_module('virt_install_domain', args, check=True))
    assert res['changed'] and res['install_phase'] == 'pending' and lookup(conn, name) is None

    res = ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['install_phase'] == 'pending'
    dom = lookup(conn, name)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    x = inactive(dom)
    assert x.find("devices/disk[@device='disk']/target").get('bus') == 'sata'
    assert x.find('devices/interface/model').get('type') == 'e1000e'
    assert x.find('clock').get('offset') == 'localtime'
    assert x.find("devices/input[@type='tablet']").get('bus') == 'usb'
    g = x.find('devices/graphics')
    assert g.get('type') == 'vnc' and g.find('listen').get('address') == '127.0.0.1'
    # The install CD is not part of the final definition; the install is pending.
    assert x.find("devices/disk[@device='cdrom']") is None
    assert [b.get('dev') for b in x.findall('os/boot')] == ['hd']
    assert record(x) == {'state': 'pending', 'source': 'cdrom'}
    assert os.path.getsize(args['disks'][0]['path']) == 40 * 1024 ** 3   # sparse raw

    for check in (True, False):
        again = ok(run_module('virt_install_domain', args, check=check))
        assert not again['changed'] and again['install_phase'] == 'pending', again['actions']


# ------------------------------------------------------------------------------ pxe

def test_pxe_boots_the_network_first_only_while_installing(conn, prefix, image_dir):
    if not conn.networkLookupByName('default').isActive():
        pytest.skip("libvirt's default network is not active")
    args = guest_args(prefix, image_dir, 'pxe', {'pxe': True},
                      networks=[{'network': 'default'}])
    res = ok(run_module('virt_install_domain', args))
    assert res['install_phase'] == 'started'
    dom = lookup(conn, args['name'])
    assert [b.get('dev') for b in live(dom).findall('os/boot')] == ['network', 'hd']
    assert live(dom).findtext('on_reboot') == 'destroy'
    assert [b.get('dev') for b in inactive(dom).findall('os/boot')] == ['hd']
    again = ok(run_module('virt_install_domain', args))
    assert not again['changed'] and again['install_phase'] == 'started'
    gone = ok(run_module('virt_install_domain', dict(args, state='absent')))
    assert gone['changed'] and lookup(conn, args['name']) is None


# ------------------------------------------------------------------------------ bad input

def test_bad_install_input_fails_before_anything_exists(conn, prefix, image_dir, tree_server):
    base = guest_args(prefix, image_dir, 'bad', {})
    disk = base['disks'][0]['path']

    def fails(install, *words):
        args = dict(base, install=dict(base['install'], **install))
        res = run_module('virt_install_domain', args)
        assert res.get('failed'), res
        for w in words:
            assert w in res['msg'], res['msg']
        assert lookup(conn, base['name']) is None and not os.path.exists(disk)
        return res

    fails({'cdrom': '/nonexistent/x.iso', 'pxe': True}, 'exactly one source')
    fails({'cdrom': os.path.join(TREES, 'rhel/.treeinfo'), 'extra_args': 'x'},
          'install.extra_args works only with install.location')
    res = fails({'location': tree_server.url + 'nothing-here/'},
                tree_server.url + 'nothing-here/images/pxeboot/vmlinuz (HTTP 404)',
                tree_server.url + 'nothing-here/boot/x86_64/loader/linux (HTTP 404)')
    assert 'Paths tried' in res['msg']
    fails({'location': os.path.join(TREES, 'rhel'), 'kickstart': '/nonexistent/ks.cfg'},
          '/nonexistent/ks.cfg')
