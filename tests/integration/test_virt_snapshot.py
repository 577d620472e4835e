"""virt_snapshot against the real libvirtd with the tiny guest.

What the guest sees is checked from inside it: a root shell on its second serial port
(support.tiny_shell; a unix socket on the host, no network) writes a marker into the first
block of /dev/vda with dd (and sync), and reads it back with the page cache dropped. That is
the simplest real check of "the disk content went back": a raw block instead of a file in a
file system (the tiny guest has no file system tools), read by the guest itself.
"""
import os
import subprocess

import libvirt
import pytest
from lxml import etree

from support.ansible_run import run_module
from support.libvirt_helpers import remove_domain, tiny_guest_xml, wait_for_state, wait_for_text
from support.tiny_shell import SerialShell, block_in_file, serial_socket_xml, shell_initrd

BOOT_TIMEOUT = 300          # a loaded 2-core machine boots the tiny guest in 5-90 s
AGENT_CHANNEL = ("<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/>"
                 "</channel>")


def make_guest(conn, name, tiny, image_dir, fmt, extra=''):
    disk = os.path.join(image_dir, 'disk.' + ('qcow2' if fmt == 'qcow2' else 'img'))
    subprocess.run(['qemu-img', 'create', '-q', '-f', fmt, disk, '16M'], check=True)
    sock = os.path.join(image_dir, 'sh.sock')
    devices = ("<disk type='file' device='disk'><driver name='qemu' type='%s'/><source file='%s'/>"
               "<target dev='vda' bus='virtio'/></disk>" % (fmt, disk)) + serial_socket_xml(sock) + extra
    assets = {'kernel': tiny['kernel'], 'initrd': shell_initrd(tiny['initrd'], image_dir)}
    log = os.path.join(image_dir, 'serial.log')
    # no_timer_check: under heavy load the kernel's IO-APIC timer check can fail under TCG
    dom = conn.defineXML(tiny_guest_xml(name, assets, log, memory=160, devices=devices,
                                        cmdline='console=ttyS0 no_timer_check'))
    return dom, disk, sock, log


def wait_ready(log, sock):
    """After something started QEMU (libvirt truncates a file serial log at every start):
    wait for this boot's KVMOPS-READY, then connect to the guest's shell."""
    wait_for_text(log, 'KVMOPS-READY', timeout=BOOT_TIMEOUT)
    return SerialShell(sock)


def boot(dom, log, sock):
    dom.create()
    return wait_ready(log, sock)


def disk_source(dom, flags=0):
    root = etree.fromstring(dom.XMLDesc(flags).encode())
    return root.find('devices/disk/source').get('file')


def snap(domain, name=None, **args):
    args.update({'domain': domain})
    if name:
        args['name'] = name
    return args


@pytest.mark.slow
def test_internal_snapshots_of_a_qcow2_guest_running_and_shut_off(conn, prefix, image_dir, tiny):
    name = prefix + 'q'
    dom, disk, sock, log = make_guest(conn, name, tiny, image_dir, 'qcow2')
    try:
        sh = boot(dom, log, sock)
        sh.write_block('BEFORE')
        assert sh.read_block() == 'BEFORE'

        # check mode: predicted, nothing created
        res = run_module('virt_snapshot', snap(name, 'run1', description='first'), check=True, diff=True)
        assert res['changed'] is True and res['kind'] == 'internal', res
        assert res['memory'] is True and res['diff']['after'] == 'run1\n'
        assert dom.snapshotNum(0) == 0

        res = run_module('virt_snapshot', snap(name, 'run1', description='first'))
        assert res['changed'] is True and res['kind'] == 'internal', res
        assert 'every disk is qcow2' in res['kind_reason']
        assert res['quiesced'] is False and 'memory state' in res['quiesce_reason']
        assert res['snapshot']['state'] == 'running' and res['snapshot']['memory'] is True
        assert res['snapshot']['current'] is True
        xml = dom.snapshotLookupByName('run1', 0).getXMLDesc(0)
        assert "<memory snapshot='internal'/>" in xml and '<description>first</description>' in xml
        assert 'run1' in subprocess.run(['qemu-img', 'snapshot', '-U', '-l', disk], stdout=subprocess.PIPE,
                                        universal_newlines=True, check=True).stdout
        # re-run (and check mode): unchanged
        for check in (True, False):
            res = run_module('virt_snapshot', snap(name, 'run1', description='first'), check=check)
            assert res['changed'] is False and res['actions'] == [], res
        # a name that clashes with a snapshot of another kind
        res = run_module('virt_snapshot', snap(name, 'run1', kind='external'))
        assert res.get('failed') and 'exists as an internal snapshot, not external' in res['msg'], res

        sh.write_block('AFTER')
        assert sh.read_block() == 'AFTER'

        # revert in check mode: refused with a prediction
        res = run_module('virt_snapshot', snap(name, 'run1', state='reverted'), check=True)
        assert res['changed'] is True and res['state_after'] == 'running', res
        assert 'would be discarded' in res['prediction'] and 'current memory state' in res['prediction']
        assert sh.read_block() == 'AFTER'

        res = run_module('virt_snapshot', snap(name, 'run1', state='reverted'))
        assert res['changed'] is True and res['state_after'] == 'running', res
        assert any('was discarded' in w for w in res.get('warnings', [])), res
        sh.close()
        sh = SerialShell(sock)
        assert sh.read_block() == 'BEFORE'            # the old content is back

        # A snapshot of the shut-off guest; revert a running guest to it.
        sh.write_block('OFFLINE')
        sh.close()
        dom.destroy()
        res = run_module('virt_snapshot', snap(name, 'off1'))
        assert res['changed'] is True and res['memory'] is False, res
        assert 'shut off' in res['quiesce_reason'] and res['snapshot']['state'] == 'shutoff'
        assert res['snapshot']['parent'] == 'run1'
        sh = boot(dom, log, sock)
        sh.write_block('LATER')
        sh.close()
        res = run_module('virt_snapshot', snap(name, 'off1', state='reverted', revert_state='running'))
        assert res['changed'] is True and res['state_before'] == 'running', res
        assert res['state_after'] == 'running'
        wait_for_state(dom, libvirt.VIR_DOMAIN_RUNNING)
        sh = wait_ready(log, sock)                     # booted afresh from the reverted disk
        assert sh.read_block() == 'OFFLINE'

        # listed: facts, parents first
        res = run_module('virt_snapshot', {'domain': name, 'state': 'listed'})
        assert [s['name'] for s in res['snapshots']] == ['run1', 'off1']
        assert res['ansible_facts']['virt_snapshots'][1]['current'] is True

        # delete the parent only: its child stays, re-parented
        res = run_module('virt_snapshot', snap(name, 'run1', state='absent'), diff=True)
        assert res['changed'] is True and res['deleted'] == ['run1'], res
        assert res['children_kept'] == ['off1'] and res['diff']['after'] == 'off1\n'
        assert dom.snapshotListNames(0) == ['off1']
        assert '<parent>' not in dom.snapshotLookupByName('off1', 0).getXMLDesc(0)
        for attempt in range(2):                        # absent twice
            res = run_module('virt_snapshot', snap(name, 'run1', state='absent'))
            assert res['changed'] is False and res['actions'] == []
        res = run_module('virt_snapshot', snap(name, 'off1', state='absent', children=True))
        assert res['changed'] is True and dom.snapshotNum(0) == 0
        sh.close()
    finally:
        remove_domain(dom)


@pytest.mark.slow
def test_external_snapshot_of_a_raw_disk_guest_is_merged_back_when_deleted(conn, prefix, image_dir, tiny):
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import plan
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot.manager import SnapshotManager
    name = prefix + 'r'
    dom, disk, sock, log = make_guest(conn, name, tiny, image_dir, 'raw', extra=AGENT_CHANNEL)
    overlay = os.path.join(image_dir, 'disk.ext1.qcow2')
    try:
        sh = boot(dom, log, sock)
        sh.write_block('BASE')
        assert block_in_file(disk) == 'BASE'

        res = run_module('virt_snapshot', snap(name, 'ext1'), check=True)
        assert res['changed'] is True and res['kind'] == 'external' and res['quiesced'] is None, res
        assert not os.path.exists(overlay)

        res = run_module('virt_snapshot', snap(name, 'ext1'))
        assert res['changed'] is True and res['kind'] == 'external', res
        assert 'disk vda is raw' in res['kind_reason']
        # the agent channel exists but nobody answers in the tiny guest: said, not hidden
        assert res['quiesced'] is False and 'guest agent did not answer' in res['quiesce_reason']
        assert any('not quiesced' in w for w in res.get('warnings', []))
        assert res['overlays'] == [overlay] and os.path.exists(overlay)
        assert disk_source(dom) == overlay and disk_source(dom, libvirt.VIR_DOMAIN_XML_INACTIVE) == overlay
        assert run_module('virt_snapshot', snap(name, 'ext1'))['changed'] is False

        sh.write_block('OVERLAY')                     # goes into the overlay, not the base
        assert sh.read_block() == 'OVERLAY' and block_in_file(disk) == 'BASE'

        # libvirt 9.0 cannot revert external snapshots: refused, nothing changed
        res = run_module('virt_snapshot', snap(name, 'ext1', state='reverted'))
        assert res.get('failed') and 'cannot revert to external' in res['msg'], res
        assert sh.read_block() == 'OVERLAY'

        # an overlay file in the way is never overwritten (the next overlay goes on top of
        # disk.ext1.qcow2, named after it)
        in_the_way = os.path.join(image_dir, 'disk.ext1.ext2.qcow2')
        with open(in_the_way, 'w') as f:
            f.write('precious')
        res = run_module('virt_snapshot', snap(name, 'ext2'))   # external again: ext1 exists
        assert res.get('failed') and 'nothing is overwritten' in res['msg'], res
        assert in_the_way in res['msg'] and open(in_the_way).read() == 'precious'
        os.unlink(in_the_way)
        assert dom.snapshotListNames(0) == ['ext1']

        # delete: merged back into the raw base, overlay gone, guest runs on the base again
        res = run_module('virt_snapshot', snap(name, 'ext1', state='absent'))
        assert res['changed'] is True and res['merged'] == ['vda'], res
        assert disk_source(dom) == disk and disk_source(dom, libvirt.VIR_DOMAIN_XML_INACTIVE) == disk
        assert not os.path.exists(overlay) and block_in_file(disk) == 'OVERLAY'
        assert sh.read_block() == 'OVERLAY'
        for attempt in range(2):
            res = run_module('virt_snapshot', snap(name, 'ext1', state='absent'))
            assert res['changed'] is False

        # The blockcommit path (what the module does where libvirt cannot merge by itself),
        # driven through the manager on the same running guest.
        res = run_module('virt_snapshot', snap(name, 'ext3', quiesce='skip'))
        assert res['changed'] is True and res['quiesce_reason'] == 'quiesce=skip.', res
        sh.write_block('COMMITTED')
        spec = plan.normalize({'domain': name, 'name': 'ext3', 'state': 'absent'})
        manager = SnapshotManager(conn._conn, spec, merge_with_blockcommit=True)
        out = manager.run()
        assert out['changed'] is True and out['merged'] == ['vda'], out
        assert 'blockcommit' in out['actions'][0]
        assert disk_source(dom) == disk and disk_source(dom, libvirt.VIR_DOMAIN_XML_INACTIVE) == disk
        assert not os.path.exists(os.path.join(image_dir, 'disk.ext3.qcow2'))
        assert block_in_file(disk) == 'COMMITTED' and sh.read_block() == 'COMMITTED'
        assert dom.snapshotNum(0) == 0
        sh.close()
    finally:
        remove_domain(dom)


def test_bad_input_and_missing_things_change_nothing(conn, prefix, image_dir, tiny):
    name = prefix + 'b'
    dom, disk, sock, log = make_guest(conn, name, tiny, image_dir, 'raw')
    try:
        res = run_module('virt_snapshot', snap(name, 's1', kind='internal'))
        assert res.get('failed') and 'internal snapshot is impossible' in res['msg'], res
        assert 'disk vda is raw' in res['msg']
        res = run_module('virt_snapshot', snap(name, 'no such', state='absent'))
        assert res.get('failed') and 'use letters, digits' in res['msg'], res
        res = run_module('virt_snapshot', snap(prefix + 'nobody', 's1'))
        assert res.get('failed') and 'no guest named' in res['msg'], res
        res = run_module('virt_snapshot', snap(name, 'gone', state='reverted'))
        assert res.get('failed') and 'has no snapshot named gone' in res['msg'], res
        res = run_module('virt_snapshot', snap(name, 's1', external_dir=image_dir + '/missing'))
        assert res.get('failed') and 'does not exist' in res['msg'], res
        assert dom.snapshotNum(0) == 0 and sorted(os.listdir(image_dir)) == ['disk.img', 'initrd-shell.img']
    finally:
        remove_domain(dom)
