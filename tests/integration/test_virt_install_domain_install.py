"""virt_install_domain installs from install.location (an install tree over HTTP, in a local
directory, on an ISO) against the real libvirtd. Other sources (cdrom, import, pxe) and bad
install input: test_virt_install_domain_install_media.py.

The tiny guest plays the installer: booted with kvmops.installer=1 it prints its kernel
command line, writes KVMOPS-INSTALLED onto its first disk and powers off, which ends the
install phase. The "installed" disk then holds only that marker (no boot loader): the final
configuration is checked to be running, from the disk, with the marker on it; nothing here
pretends that an operating system booted from it.

Install trees are served over HTTP by a server on 127.0.0.1 in a thread of this process,
which counts every request, so "a re-run fetches nothing" is measured, not assumed.
Verification goes through libvirt-python, the disk files and the serial log, not the module.
"""
import json
import os

import libvirt

from support.ansible_run import run_module
from support.install_guests import (
    INSTALLER_ARGS, TREES, assert_final_running_from_disk, check_rerun_unchanged, guest_args,
    inactive, live, lookup, ok, record)
from support.libvirt_helpers import wait_for_state


def test_location_rhel_tree_over_http(conn, prefix, image_dir, tree_server, recorders):
    args = guest_args(prefix, image_dir, 'rhel', {
        'location': tree_server.url + 'rhel/', 'extra_args': INSTALLER_ARGS + ' kvmops.t=rhel',
        'wait': -1})
    name = args['name']
    disk = args['disks'][0]['path']
    cache = os.path.join(image_dir, 'cache')

    # Check mode: nothing fetched, created or defined.
    before = len(tree_server.requests)
    res = ok(run_module('virt_install_domain', args, check=True))
    assert res['changed'] and res['install_phase'] == 'started'
    assert 'would start the installer' in res['actions'] and res['install']['fetched']
    assert len(tree_server.requests) == before and not os.path.exists(cache)
    assert lookup(conn, name) is None and not os.path.exists(disk)

    rec = recorders(args['serial'])
    res = ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['install_phase'] == 'completed', res['actions']
    assert res['install']['layout'] == 'redhat' and res['install']['fetched']
    assert res['actions'][-3:] == ['started the installer', 'install phase completed', 'started']
    fetched = tree_server.requests[before:]
    assert fetched == ['/rhel/.treeinfo', '/rhel/images/pxeboot/vmlinuz',
                       '/rhel/images/pxeboot/initrd.img']

    console = rec.text()
    assert 'KVMOPS-CMDLINE: %s kvmops.t=rhel' % INSTALLER_ARGS in console
    assert 'KVMOPS-INSTALL-DONE /dev/vda' in console
    dom = assert_final_running_from_disk(conn, name, disk)
    final = inactive(dom)
    assert final.find('os/kernel') is None
    assert record(final)['state'] == 'completed' and record(final)['source'] == 'location'
    # The cache holds exactly what the tree holds.
    with open(os.path.join(TREES, 'rhel/images/pxeboot/vmlinuz'), 'rb') as f:
        assert open(res['install']['kernel'], 'rb').read() == f.read()

    check_rerun_unchanged(args, tree_server)

    gone = ok(run_module('virt_install_domain', dict(args, state='absent')))
    assert gone['changed'] and lookup(conn, name) is None
    assert os.path.exists(disk)


def test_location_debian_tree_over_http(conn, prefix, image_dir, tree_server, recorders):
    # The Debian tree's root is the installer-<arch>/ level (current/images/... below it).
    args = guest_args(prefix, image_dir, 'deb', {
        'location': tree_server.url + 'debian', 'extra_args': INSTALLER_ARGS + ' kvmops.t=deb',
        'wait': 300})
    before = len(tree_server.requests)
    rec = recorders(args['serial'])
    res = ok(run_module('virt_install_domain', args))
    assert res['install_phase'] == 'completed' and res['install']['layout'] == 'debian'
    fetched = tree_server.requests[before:]
    assert '/debian/current/images/netboot/debian-installer/amd64/linux' in fetched
    assert '/debian/current/images/netboot/debian-installer/amd64/initrd.gz' in fetched
    assert 'KVMOPS-CMDLINE: %s kvmops.t=deb' % INSTALLER_ARGS in rec.text()
    dom = assert_final_running_from_disk(conn, args['name'], args['disks'][0]['path'])
    check_rerun_unchanged(args, tree_server)
    # A later change of the definition keeps the install record: still no second install.
    res = ok(run_module('virt_install_domain', dict(args, memory=320)))
    assert res['changed'] and res['restart_required'] and res['install_phase'] == 'completed'
    # the only warning is the pending restart's (issue 27: a change that waits is said)
    assert 'started the installer' not in res['actions']
    assert [w for w in res.get('warnings', []) if 'until it restarts' not in w] == []
    assert record(inactive(dom))['state'] == 'completed'


def test_location_local_directory_with_kickstart(conn, prefix, image_dir, recorders):
    token = os.path.basename(image_dir)[-6:]
    secret = 'Kvm0ps-Pw-%s' % token
    ks = os.path.join(image_dir, 'ks.cfg')
    with open(ks, 'w') as f:
        f.write('# KVMOPS-KS-%s unattended\nrootpw --plaintext %s\n' % (token, secret))
    args = guest_args(prefix, image_dir, 'dir', {
        'location': os.path.join(TREES, 'rhel'), 'extra_args': INSTALLER_ARGS,
        'kickstart': ks, 'wait': -1})
    rec = recorders(args['serial'])
    res = ok(run_module('virt_install_domain', args))
    assert res['install_phase'] == 'completed'
    assert res['install']['injected_as'] == '/ks.cfg'
    assert res['install']['cmdline'] == INSTALLER_ARGS + ' inst.ks=file:/ks.cfg'
    console = rec.text()
    # The installer saw the injected file at the root of its initramfs.
    assert 'KVMOPS-KS: /ks.cfg: # KVMOPS-KS-%s unattended' % token in console
    assert 'KVMOPS-CMDLINE: %s inst.ks=file:/ks.cfg' % INSTALLER_ARGS in console
    # The password never shows up in results or Ansible's output.
    assert secret not in json.dumps(res)
    # The injected copy (the only file holding the secret) is gone; the plain initrd stays.
    cache_dir = res['install']['cache']
    assert sorted(os.listdir(cache_dir)) == ['initrd', 'kernel', 'manifest.json']
    assert_final_running_from_disk(conn, args['name'], args['disks'][0]['path'])
    again = check_rerun_unchanged(args)
    assert secret not in json.dumps(again)


def test_location_iso_holding_a_tree_nobody_waits(conn, prefix, image_dir, tiny, recorders):
    args = guest_args(prefix, image_dir, 'iso', {
        'location': tiny['tree_iso'], 'extra_args': INSTALLER_ARGS})
    name = args['name']
    rec = recorders(args['serial'])
    res = ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['install_phase'] == 'started'
    assert res['install']['layout'] == 'redhat'
    dom = lookup(conn, name)
    # While the installer runs: direct kernel boot from the cache, the ISO attached as a CD,
    # on_reboot=destroy; the persistent definition is already the final one.
    cur = live(dom)
    assert dom.isActive()
    assert cur.findtext('os/kernel') == res['install']['kernel']
    assert cur.findtext('on_reboot') == 'destroy'
    cds = cur.findall("devices/disk[@device='cdrom']/source")
    assert [c.get('file') for c in cds] == [tiny['tree_iso']]
    final = inactive(dom)
    assert final.find('os/kernel') is None and final.find("devices/disk[@device='cdrom']") is None
    assert record(final)['state'] == 'started'

    # A re-run while the installer runs changes nothing; with a short wait it times out
    # (a warning, not a failure). The installer then ends on its own.
    during = ok(run_module('virt_install_domain', dict(args, wait=1)))
    assert not during['changed'] and during['install_phase'] == 'timed_out', during['actions']
    assert any('still running after wait=1' in w for w in during.get('warnings', []))
    wait_for_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, timeout=120)
    assert 'KVMOPS-INSTALL-DONE /dev/vda' in rec.text()
    # The next run sees the ended install phase and starts the final configuration.
    res = ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['install_phase'] == 'completed'
    assert res['actions'] == ['install phase completed', 'started']
    assert_final_running_from_disk(conn, name, args['disks'][0]['path'])
    check_rerun_unchanged(args)
