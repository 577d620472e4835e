"""virt_snapshots (one snapshot over a group of guests) against the real libvirtd.

Three tiny guests with qcow2 disks (internal snapshots, which libvirt 9.0 can revert). The
data is checked on the host, independently of the module: markers written into each guest's
image with qemu-io while the guest is shut off (a 64 KiB pattern at offset 0) and read back
with qemu-io's pattern check; the snapshots through libvirt and `qemu-img snapshot -l`.

The failure part-way: a running guest whose agent channel nobody answers (the tiny guest runs
no agent) with quiesce=required, which SnapshotManager refuses only when it acts (its plan
cannot know that the agent will not answer). Nothing here boots a guest to its marker: the
running guest only needs a QEMU process for the disk-only snapshot; the guests restarted with
the tiny guest's fake agent boot until it answers.

The last test is the README's walk-through (template -> linked clones -> group snapshot ->
revert) with tiny guests, so the coordinator's text is a tested sequence.
"""
import hashlib
import os
import subprocess
import time

import libvirt
import pytest

from support.ansible_run import run_module
from support.domain_guests import tiny_args
from support.libvirt_helpers import remove_domain, tiny_guest_xml

AGENT_CHANNEL = ("<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/>"
                 "</channel>")
BEFORE, AFTER, LATER = '0x41', '0x42', '0x43'
BOOT_TIMEOUT = 300          # a loaded 2-core machine boots the tiny guest in 5-90 s
FAKE_AGENT = ' kvmops.agent=1'   # the tiny guest's fake agent: answers freeze and thaw


def guest_xml(name, tiny, image_dir, disk, extra='', cmdline=''):
    devices = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
               "<source file='%s'/><target dev='vda' bus='virtio'/></disk>" % disk) + extra
    return tiny_guest_xml(name, tiny, os.path.join(image_dir, name + '.log'), memory=128,
                          devices=devices, cmdline='console=ttyS0 no_timer_check' + cmdline)


def make_guests(conn, prefix, tiny, image_dir, count=3, extra='', cmdlines=None):
    """[(dom, disk)] of shut-off tiny guests, each on a qcow2 image named after it."""
    out = []
    for i in range(count):
        name = '%sg%d' % (prefix, i + 1)
        disk = os.path.join(image_dir, name + '.qcow2')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, '16M'], check=True)
        dom = conn.defineXML(guest_xml(name, tiny, image_dir, disk, extra,
                                       (cmdlines or {}).get(i, '')))
        out.append((dom, disk))
    return out


def write(disk, pattern):
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P %s 0 64k' % pattern, disk],
                   check=True, stdout=subprocess.DEVNULL)


def holds(disk, pattern, fmt='qcow2'):
    """Whether the image's first 64 KiB are the pattern (qemu-io exits 1 when they are not)."""
    return subprocess.run(['qemu-io', '-f', fmt, '-c', 'read -P %s 0 64k' % pattern, disk],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def qemu_snapshots(disk):
    out = subprocess.run(['qemu-img', 'snapshot', '-U', '-l', disk], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return [line.split()[1] for line in out.splitlines()[2:] if line.strip()]


def names(doms):
    return [d.name() for d, dummy in doms]


def agent_connected(dom, timeout=BOOT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "name='org.qemu.guest_agent.0' state='connected'" in dom.XMLDesc(0):
            return
        time.sleep(0.5)
    raise AssertionError('the fake agent of %s did not connect within %ss' % (dom.name(), timeout))


def has(dom, snap):
    return snap in dom.snapshotListNames(0)


def status(res):
    return [g['status'] for g in res['guests']]


def test_group_snapshot_revert_and_delete_of_three_guests(conn, prefix, image_dir, tiny):
    guests = make_guests(conn, prefix, tiny, image_dir)
    doms = names(guests)
    args = {'domains': doms, 'name': 'patch1', 'description': 'before the patches'}
    try:
        for dom, disk in guests:
            write(disk, BEFORE)

        # check mode: the plans, nothing made
        res = run_module('virt_snapshots', args, check=True, diff=True)
        assert res['changed'] is True and status(res) == ['planned'] * 3, res
        assert [g['kind'] for g in res['guests']] == ['internal'] * 3
        assert res['summary']['planned_guests'] == doms and res['summary']['with_snapshot'] == []
        assert res['diff']['after'] == ''.join('%s: patch1\n' % d for d in doms)
        assert len(res['actions']) == 3 and res['actions'][0].startswith(doms[0] + ': create internal')
        for dom, disk in guests:
            assert dom.snapshotNum(0) == 0 and qemu_snapshots(disk) == []

        # real: every guest has it, seen by libvirt and in each image
        res = run_module('virt_snapshots', args, diff=True)
        assert res['changed'] is True and status(res) == ['changed'] * 3, res
        assert res['summary']['with_snapshot'] == doms and res['summary']['changed_guests'] == doms
        for g in res['guests']:
            assert g['snapshot']['state'] == 'shutoff' and g['quiesced'] is False
            assert 'shut off' in g['quiesce_reason']
        for dom, disk in guests:
            assert has(dom, 'patch1') and qemu_snapshots(disk) == ['patch1']
            assert '<description>before the patches</description>' in \
                dom.snapshotLookupByName('patch1', 0).getXMLDesc(0)

        # check mode again, then a re-run: nothing to do
        for check in (True, False):
            res = run_module('virt_snapshots', args, check=check)
            assert res['changed'] is False and res['actions'] == [], res
            assert status(res) == ['unchanged'] * 3

        # the patch writes; the group revert brings every disk back
        for dom, disk in guests:
            write(disk, AFTER)
        rev = dict(args, state='reverted')
        res = run_module('virt_snapshots', rev, check=True)
        assert res['changed'] is True and status(res) == ['planned'] * 3, res
        assert all('would be discarded' in g['prediction'] for g in res['guests'])
        assert all(holds(disk, AFTER) for dummy, disk in guests)
        res = run_module('virt_snapshots', rev)
        assert res['changed'] is True and res['summary']['reverted_guests'] == doms, res
        assert all(g['state_after'] == 'stopped' for g in res['guests'])
        for dom, disk in guests:
            assert holds(disk, BEFORE) and not holds(disk, AFTER) and not dom.isActive()

        # delete on every guest: snapshots gone, the data the disks hold now kept
        for dom, disk in guests:
            write(disk, LATER)
        res = run_module('virt_snapshots', dict(args, state='absent'), diff=True)
        assert res['changed'] is True and status(res) == ['changed'] * 3, res
        assert res['summary']['without_snapshot'] == doms
        assert res['diff']['after'] == ''.join('%s: (none)\n' % d for d in doms)
        for dom, disk in guests:
            assert dom.snapshotNum(0) == 0 and qemu_snapshots(disk) == []
            assert holds(disk, LATER)
        for check in (True, False):
            res = run_module('virt_snapshots', dict(args, state='absent'), check=check)
            assert res['changed'] is False and status(res) == ['unchanged'] * 3, res
    finally:
        for dom, dummy in guests:
            remove_domain(dom)


def test_a_refused_guest_stops_the_group_before_anything(conn, prefix, image_dir, tiny):
    guests = make_guests(conn, prefix, tiny, image_dir)
    doms = names(guests)
    try:
        # a guest that does not exist: nothing done on the others
        ghost = prefix + 'nobody'
        res = run_module('virt_snapshots', {'domains': [doms[0], ghost, doms[2]], 'name': 'p1'})
        assert res.get('failed') and res['msg'].startswith('Nothing was done on any guest'), res
        assert '%s: There is no guest named %s' % (ghost, ghost) in res['msg']
        assert res['summary']['refused_guests'] == [ghost]
        assert [g['status'] for g in res['guests']] == ['planned', 'refused', 'planned']
        assert all(d.snapshotNum(0) == 0 for d, dummy in guests)

        # a revert where one guest lacks the snapshot: nobody is reverted
        subprocess.run(['virsh', '-q', '-c', 'qemu:///system', 'snapshot-create-as', doms[0], 'p1'],
                       check=True, stdout=subprocess.DEVNULL)
        write(guests[0][1], AFTER)
        res = run_module('virt_snapshots', {'domains': doms, 'name': 'p1', 'state': 'reverted'})
        assert res.get('failed') and 'refused for 2 of the guests' in res['msg'], res
        assert 'has no snapshot named p1' in res['msg'] and doms[1] in res['msg'] and doms[2] in res['msg']
        assert res['summary']['with_snapshot'] == [doms[0]]
        assert holds(guests[0][1], AFTER)

        # one external_dir for guests whose disks share a file name: refused in the plan
        shared = os.path.join(image_dir, 'snaps')
        os.mkdir(shared)
        same = os.path.join(image_dir, 'same')
        os.mkdir(same)
        others = []
        for i in range(2):
            sub = os.path.join(same, str(i))
            os.mkdir(sub)
            disk = os.path.join(sub, 'disk.qcow2')
            subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, '16M'], check=True)
            devices = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                       "<source file='%s'/><target dev='vda' bus='virtio'/></disk>" % disk)
            others.append(conn.defineXML(tiny_guest_xml('%ssame%d' % (prefix, i), tiny,
                                                        os.path.join(sub, 'log'), memory=128,
                                                        devices=devices)))
        res = run_module('virt_snapshots', {'domains': [o.name() for o in others], 'name': 'p2',
                                            'kind': 'external', 'external_dir': shared})
        assert res.get('failed') and 'would also be the overlay of' in res['msg'], res
        assert os.listdir(shared) == [] and all(o.snapshotNum(0) == 0 for o in others)
        for o in others:
            remove_domain(o)
    finally:
        for dom, dummy in guests:
            remove_domain(dom)


@pytest.mark.slow
def test_a_failure_midway_keeps_what_was_done_and_a_rerun_finishes(conn, prefix, image_dir, tiny):
    """External snapshots (the chains libvirt 9.0 merges back on delete) in one external_dir,
    quiesce=required: the first guest is shut off (nothing to freeze), the second runs with an
    agent channel and no agent, the third runs the tiny guest's fake agent, which answers the
    freeze and logs it on its console. The fix for the second: restart it with the agent."""
    guests = make_guests(conn, prefix, tiny, image_dir, extra=AGENT_CHANNEL, cmdlines={2: FAKE_AGENT})
    doms = names(guests)
    snaps = os.path.join(image_dir, 'snaps')
    os.mkdir(snaps)
    args = {'domains': doms, 'name': 'p3', 'kind': 'external', 'external_dir': snaps,
            'quiesce': 'required'}
    overlay = dict((d, os.path.join(snaps, '%s.p3.qcow2' % d)) for d in doms)
    try:
        for dom, disk in guests:
            write(disk, BEFORE)
        guests[1][0].create()           # a QEMU process is enough for it: no boot awaited
        guests[2][0].create()

        res = run_module('virt_snapshots', args, check=True)
        assert res['changed'] is True and status(res) == ['planned'] * 3, res
        assert [g['quiesced'] for g in res['guests']] == [False, None, None]   # None: would be tried
        assert os.listdir(snaps) == []

        res = run_module('virt_snapshots', args)
        assert res.get('failed') and res['changed'] is True, res
        assert status(res) == ['changed', 'failed', 'not_done']
        assert 'stopped at guest %s: quiesce=required, but the guest agent did not freeze' % doms[1] in res['msg']
        assert 'exists now on: %s; not on: %s, %s.' % (doms[0], doms[1], doms[2]) in res['msg']
        assert res['summary']['with_snapshot'] == [doms[0]]
        assert res['summary']['without_snapshot'] == [doms[1], doms[2]]
        assert res['guests'][0]['quiesced'] is False and 'shut off' in res['guests'][0]['quiesce_reason']
        # independently: only the first guest has it, on its overlay
        assert [has(d, 'p3') for d, dummy in guests] == [True, False, False]
        assert sorted(os.listdir(snaps)) == [os.path.basename(overlay[doms[0]])]

        # the cause fixed: the second guest restarted with its agent. The re-run acts on the
        # two left only, both frozen by their agents (their consoles log freeze, then thaw)
        dom2 = guests[1][0]
        dom2.destroy()
        xml = dom2.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        guests[1] = (conn.defineXML(xml.replace('no_timer_check</cmdline>',
                                                'no_timer_check%s</cmdline>' % FAKE_AGENT)), guests[1][1])
        guests[1][0].create()
        for dom, dummy in guests[1:]:
            agent_connected(dom)
        res = run_module('virt_snapshots', args)
        assert res['changed'] is True and status(res) == ['unchanged', 'changed', 'changed'], res
        assert [g['quiesced'] for g in res['guests'][1:]] == [True, True]
        assert all('froze' in g['quiesce_reason'] for g in res['guests'][1:])
        for d in doms[1:]:
            with open(os.path.join(image_dir, d + '.log')) as f:
                console = f.read()
            assert console.index('KVMOPS-AGENT guest-fsfreeze-freeze') < \
                console.index('KVMOPS-AGENT guest-fsfreeze-thaw'), console[-2000:]
        assert [has(d, 'p3') for d, dummy in guests] == [True, True, True]
        assert sorted(os.listdir(snaps)) == sorted(os.path.basename(p) for p in overlay.values())
        assert run_module('virt_snapshots', args)['changed'] is False

        # a write into the shut-off guest's overlay, then delete: every chain merged (the
        # running guests' live), overlays gone, each guest on its own image again, data kept
        write(overlay[doms[0]], LATER)
        assert not holds(guests[0][1], LATER)
        res = run_module('virt_snapshots', dict(args, state='absent'))
        assert res['changed'] is True and status(res) == ['changed'] * 3, res
        assert all(g['merged'] == ['vda'] for g in res['guests'])
        assert os.listdir(snaps) == []
        assert holds(guests[0][1], LATER)
        for dom, disk in guests:
            assert dom.snapshotNum(0) == 0
            assert "<source file='%s'" % disk in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            if dom.isActive():
                assert "<source file='%s'" % disk in dom.XMLDesc(0)
    finally:
        for dom, dummy in guests:
            remove_domain(dom)


def test_walk_through_template_linked_clones_group_snapshot_revert(conn, prefix, image_dir, tiny):
    """The README's walk-through with tiny guests: a template, three linked clones in one
    virt_install_domains task, the group snapshot, the patch (markers written into each
    clone's overlay), the group revert, the delete; the template's image never changes."""
    name = prefix + 'tmpl'
    base = os.path.join(image_dir, 'tmpl.img')
    args = tiny_args(prefix, image_dir, tiny, name=name, state='stopped', template=True,
                     cmdline='console=ttyS0 no_timer_check', graphics={'type': 'none'},
                     disks=[{'path': base, 'size': 0.0625, 'format': 'raw'}])
    res = run_module('virt_install_domain', args)
    assert not res.get('failed') and res['template'] is True, res.get('msg')
    before = sha256(base)
    clones = ['%sweb%02d' % (prefix, i) for i in range(1, 4)]
    batch = {'guests': [{'name': c, 'serial': os.path.join(image_dir, c + '.log')} for c in clones],
             'defaults': {'state': 'stopped', 'memory': '128MiB',
                          'clone_from': {'name': name, 'mode': 'linked'}}}
    res = run_module('virt_install_domains', batch)
    assert not res.get('failed') and res['summary']['changed'] == 3, res.get('msg')
    disks = {}
    for c in clones:
        xml = conn.lookupByName(c).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        disks[c] = xml.split("<source file='", 1)[1].split("'", 1)[0]
        assert "type='qcow2'" in xml and disks[c] != base
        write(disks[c], BEFORE)

    group_args = {'domains': clones, 'name': 'before-patch'}
    res = run_module('virt_snapshots', group_args)
    assert res['changed'] is True and res['summary']['with_snapshot'] == clones, res
    assert [g['kind'] for g in res['guests']] == ['internal'] * 3
    for c in clones:
        write(disks[c], AFTER)                        # the patch
    res = run_module('virt_snapshots', dict(group_args, state='reverted'))
    assert res['changed'] is True and res['summary']['reverted_guests'] == clones, res
    assert all(holds(disks[c], BEFORE) for c in clones)
    res = run_module('virt_snapshots', dict(group_args, state='absent'))
    assert res['changed'] is True and res['summary']['without_snapshot'] == clones, res
    assert all(holds(disks[c], BEFORE) and qemu_snapshots(disks[c]) == [] for c in clones)
    assert sha256(base) == before
