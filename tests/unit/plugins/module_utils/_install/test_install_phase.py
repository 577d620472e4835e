"""Unit tests of _install/phase.py: the install XML built from a final XML (pure functions),
the kernel command line, the install record, and the state machine of run().

run() is driven here with a small fake domain (state, live XML, setMetadata, create) and a
fake clock: that is pure decision logic; the real daemon runs it in
tests/integration/test_virt_install_domain_install.py."""
import pytest
from lxml import etree

from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import phase as ph

FINAL = """<domain type='qemu'>
  <name>g1</name>
  <uuid>3b0c1f2e-8d7a-4c55-9f7e-0123456789ab</uuid>
  <metadata><other:x xmlns:other='urn:other'/></metadata>
  <memory unit='KiB'>262144</memory>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    <boot dev='hd'/>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/g1.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    {extra}
  </devices>
</domain>"""


def final(machine='pc-i440fx-7.2', extra=''):
    return FINAL.format(machine=machine, extra=extra)


def parse(xml):
    return etree.fromstring(xml.encode())


def test_kernel_install_xml():
    xml = ph.build_install_xml(final(), {'boot': 'kernel', 'kernel': '/c/kernel',
                                         'initrd': '/c/initrd', 'cmdline': 'console=ttyS0 a=b'},
                               {'state': 'started', 'source': 'location'})
    root = parse(xml)
    assert root.findtext('uuid') == '3b0c1f2e-8d7a-4c55-9f7e-0123456789ab'
    assert root.findtext('os/kernel') == '/c/kernel'
    assert root.findtext('os/initrd') == '/c/initrd'
    assert root.findtext('os/cmdline') == 'console=ttyS0 a=b'
    assert root.findtext('on_reboot') == 'destroy'
    assert root.findtext('on_poweroff') == 'destroy'
    assert root.find('metadata/{urn:other}x') is not None       # others' metadata kept
    rec = ph.read_record(xml)
    assert rec == {'state': 'started', 'source': 'location', 'phase': 'install'}
    assert [c.tag for c in root.find('os')][:3] == ['type', 'kernel', 'initrd']


def test_kernel_install_replaces_a_permanent_kernel_and_can_attach_the_iso():
    base = final().replace("<boot dev='hd'/>", "<kernel>/old</kernel><cmdline>old</cmdline>")
    root = parse(ph.build_install_xml(base, {'boot': 'kernel', 'kernel': '/k', 'initrd': '/i',
                                             'cmdline': '', 'attach_iso': '/isos/tree.iso'}))
    assert [e.text for e in root.findall('os/kernel')] == ['/k']
    assert root.find('os/cmdline') is None
    cd = root.find("devices/disk[@device='cdrom']")
    assert cd.find('source').get('file') == '/isos/tree.iso'
    assert cd.find('readonly') is not None
    assert root.find('devices/disk/boot') is None


# One CD-ROM bus rule for the builder and the install phase (_libvirt/disk_targets): SATA on
# every machine type, so the installer CD sits on the bus of the guest's other CD-ROMs.
@pytest.mark.parametrize('machine,bus,dev', [('pc-i440fx-7.2', 'sata', 'sda'), ('pc', 'sata', 'sda'),
                                             ('q35', 'sata', 'sda'), ('pc-q35-7.2', 'sata', 'sda')])
def test_cdrom_install_boots_the_cd_first(machine, bus, dev):
    root = parse(ph.build_install_xml(final(machine), {'boot': 'cdrom', 'iso': '/isos/w.iso'}))
    assert [b.get('dev') for b in root.findall('os/boot')] == ['cdrom', 'hd']
    cd = root.find("devices/disk[@device='cdrom']")
    assert cd.find('target').get('bus') == bus and cd.find('target').get('dev') == dev
    assert root.find('os/kernel') is None


def test_cdrom_target_does_not_collide_and_an_existing_cd_with_the_iso_is_reused():
    extra = ("<disk type='file' device='disk'><source file='/x'/><target dev='sda' bus='sata'/>"
             "</disk>")
    root = parse(ph.build_install_xml(final(extra=extra), {'boot': 'cdrom', 'iso': '/w.iso'}))
    assert root.find("devices/disk[@device='cdrom']/target").get('dev') == 'sdb'
    extra = ("<disk type='file' device='cdrom'><source file='/w.iso'/>"
             "<target dev='sdb' bus='sata'/><readonly/></disk>")
    root = parse(ph.build_install_xml(final(extra=extra), {'boot': 'cdrom', 'iso': '/w.iso'}))
    assert len(root.findall("devices/disk[@device='cdrom']")) == 1


def test_per_device_boot_order_is_shifted():
    base = final().replace("<boot dev='hd'/>", '').replace(
        "<target dev='vda' bus='virtio'/>", "<target dev='vda' bus='virtio'/><boot order='1'/>")
    root = parse(ph.build_install_xml(base, {'boot': 'cdrom', 'iso': '/w.iso'}))
    assert root.find('os/boot') is None
    assert root.find("devices/disk[@device='cdrom']/boot").get('order') == '1'
    assert root.find("devices/disk[@device='disk']/boot").get('order') == '2'


def test_network_install():
    extra = "<interface type='network'><source network='default'/></interface>"
    root = parse(ph.build_install_xml(final(extra=extra), {'boot': 'network'}))
    assert [b.get('dev') for b in root.findall('os/boot')] == ['network', 'hd']
    with pytest.raises(ph.InstallPhaseError) as exc:
        ph.build_install_xml(final(), {'boot': 'network'})
    assert 'network interface' in str(exc.value)


def test_install_xml_needs_a_defined_domain():
    with pytest.raises(ph.InstallPhaseError):
        ph.build_install_xml(final().replace('<uuid>3b0c1f2e-8d7a-4c55-9f7e-0123456789ab</uuid>', ''),
                             {'boot': 'network'})


@pytest.mark.parametrize('extra,layout,name,expected', [
    ('console=ttyS0', 'redhat', 'ks.cfg', 'console=ttyS0 inst.ks=file:/ks.cfg'),
    ('console=ttyS0 ks=http://x/ks.cfg', 'redhat', 'ks.cfg', 'console=ttyS0 ks=http://x/ks.cfg'),
    ('', 'debian', 'preseed.cfg', ''),
    ('', 'debian', 'my.cfg', 'preseed/file=/my.cfg'),
    ('', 'suse', 'autoinst.xml', 'autoyast=file:///autoinst.xml'),
    (None, 'redhat', None, ''),
    ('  a  ', None, None, 'a'),
])
def test_install_cmdline(extra, layout, name, expected):
    assert ph.install_cmdline(extra, layout, name) == expected


def test_record_round_trip():
    assert ph.read_record(final()) is None
    el = ph.record_element_xml({'state': 'pending', 'source': 'cdrom', 'completed': None})
    assert el == '<install source="cdrom" state="pending"/>'
    xml = final().replace('<metadata>', "<metadata><kvmops:install xmlns:kvmops='%s' "
                                        "state='completed' source='pxe'/>" % ph.RECORD_NS)
    assert ph.read_record(xml) == {'state': 'completed', 'source': 'pxe'}
    bogus = final().replace('<metadata>', "<metadata><k:install xmlns:k='%s' state='weird'/>"
                                          % ph.RECORD_NS)
    assert ph.read_record(bogus) is None


# ---------------------------------------------------------------- run(): the state machine

class FakeDom(object):
    """Just enough of virDomain: the installer "runs" for `install_ticks` polls."""

    def __init__(self, record=None, running=False, installer=False, install_ticks=2):
        self.record = record
        self.running = running
        self.installer = installer
        self.ticks = install_ticks
        self.created_final = 0
        self.meta_calls = []
        self.reason = 1           # shutoff reason once it stopped (1: shutdown)

    def name(self):
        return 'g1'

    def state(self):
        if self.running and self.installer and self.ticks is not None:
            if self.ticks <= 0:
                self.running = False
            else:
                self.ticks -= 1
        return [1, 1] if self.running else [5, self.reason]

    def XMLDesc(self, flags=0):
        rec = dict(self.record or {})
        if self.running and self.installer:
            rec['phase'] = 'install'
        attrs = ' '.join("%s='%s'" % kv for kv in sorted(rec.items()))
        return final().replace('<metadata>', "<metadata><k:install xmlns:k='%s' %s/>"
                               % (ph.RECORD_NS, attrs)) if rec else final()

    def setMetadata(self, typ, xml, prefix, uri, flags):
        assert (typ, prefix, uri, flags) == (2, 'kvmops', ph.RECORD_NS, 2)
        self.record = dict(etree.fromstring(xml.encode()).attrib)
        self.meta_calls.append(self.record['state'])

    def create(self):
        self.running, self.installer = True, False
        self.created_final += 1


class FakeConn(object):
    def __init__(self, dom, fail=False):
        self.dom = dom
        self.fail = fail
        self.xml = None

    def createXML(self, xml, flags):
        if self.fail:
            raise RuntimeError('qemu says no')
        self.xml = xml
        self.dom.running, self.dom.installer = True, True
        return self.dom


class Clock(object):
    def __init__(self):
        self.t = 0.0

    def sleep(self, s):
        self.t += s

    def monotonic(self):
        return self.t


PLAN = {'boot': 'kernel', 'kernel': '/k', 'initrd': '/i', 'cmdline': 'console=ttyS0'}


def go(dom, conn=None, want_running=True, wait=0, check=False, clock=None, completed=None):
    clock = clock or Clock()
    plans = []

    def factory(check_mode):
        plans.append(check_mode)
        return PLAN
    res = ph.run(conn or FakeConn(dom), dom, dom.record, want_running, wait, factory, final(),
                 check_mode=check, sleep=clock.sleep, monotonic=clock.monotonic,
                 on_completed=completed)
    res['_plans'] = plans
    return res


def test_no_record_means_no_install_phase():
    dom = FakeDom(record=None)
    res = go(dom)
    assert res['install_phase'] == 'none' and not res['changed'] and res['_plans'] == []


def test_pending_without_state_running_stays_pending():
    dom = FakeDom(record={'state': 'pending', 'source': 'location'})
    res = go(dom, want_running=False)
    assert res['install_phase'] == 'pending' and not res['changed'] and res['_plans'] == []


def test_check_mode_predicts_and_touches_nothing():
    dom = FakeDom(record={'state': 'pending', 'source': 'location'})
    conn = FakeConn(dom)
    res = go(dom, conn, wait=-1, check=True)
    assert res['install_phase'] == 'started' and res['changed']
    assert res['_plans'] == [True] and conn.xml is None and dom.meta_calls == []


def test_wait_zero_returns_once_started():
    dom = FakeDom(record={'state': 'pending', 'source': 'location'})
    conn = FakeConn(dom)
    res = go(dom, conn, wait=0)
    assert res['install_phase'] == 'started' and res['changed'] and res['started_installer']
    assert dom.meta_calls == ['started'] and ph.read_record(conn.xml)['phase'] == 'install'
    assert dom.created_final == 0
    # Re-run while the installer still runs: nothing to do.
    dom.ticks = 100
    again = go(dom, conn, wait=0)
    assert again['install_phase'] == 'started' and not again['changed'] and again['_plans'] == []


def test_wait_until_done_then_start_final_and_never_again():
    dom = FakeDom(record={'state': 'pending', 'source': 'location'}, install_ticks=3)
    done = []
    res = go(dom, wait=-1, completed=done.append)
    assert res['install_phase'] == 'completed' and res['started_final']
    assert dom.meta_calls == ['started', 'completed'] and dom.created_final == 1
    assert done and done[0]['state'] == 'completed' and 'phase' not in done[0]
    assert 'started' in dom.record and 'completed' in dom.record
    again = go(dom, wait=-1)
    assert again['install_phase'] == 'completed' and not again['changed']
    assert dom.created_final == 1 and again['_plans'] == []


def test_timeout_reports_timed_out_then_a_later_run_completes():
    clock = Clock()
    dom = FakeDom(record={'state': 'pending', 'source': 'cdrom'}, install_ticks=1000)
    res = go(dom, wait=5, clock=clock)
    assert res['install_phase'] == 'timed_out' and res['changed']
    assert 4.9 <= clock.t <= 5.6
    dom.running = False           # the installer ends while nobody waits
    later = go(dom, wait=0)
    assert later['install_phase'] == 'completed' and later['changed'] and later['started_final']
    assert dom.record['state'] == 'completed'


def test_started_and_shut_off_with_state_stopped_completes_without_starting():
    dom = FakeDom(record={'state': 'started', 'source': 'location'})
    res = go(dom, want_running=False)
    assert res['install_phase'] == 'completed' and not res['started_final']
    assert dom.created_final == 0 and dom.record['state'] == 'completed'


def test_final_config_running_means_install_is_over():
    dom = FakeDom(record={'state': 'started', 'source': 'location'}, running=True)
    res = go(dom)
    assert res['install_phase'] == 'completed' and res['changed']
    assert dom.record['state'] == 'completed' and dom.created_final == 0


def test_failed_start_goes_back_to_pending():
    dom = FakeDom(record={'state': 'pending', 'source': 'location'})
    with pytest.raises(ph.InstallPhaseError) as exc:
        go(dom, FakeConn(dom, fail=True))
    assert 'qemu says no' in str(exc.value)
    assert dom.record['state'] == 'pending'


def test_a_running_domain_with_a_pending_record_is_not_touched():
    dom = FakeDom(record={'state': 'pending', 'source': 'location'}, running=True)
    with pytest.raises(ph.InstallPhaseError):
        go(dom)


def test_wait_for_shutoff_limits():
    clock = Clock()
    dom = FakeDom(running=True, installer=True, install_ticks=None)
    assert ph.wait_for_shutoff(dom, 0, clock.sleep, clock.monotonic) is False and clock.t == 0
    assert ph.wait_for_shutoff(dom, 2, clock.sleep, clock.monotonic) is False
    dom.ticks = 4
    assert ph.wait_for_shutoff(dom, -1, clock.sleep, clock.monotonic) is True


def test_add_record_marks_a_final_definition_pending():
    xml = ph.add_record(final(), ph.new_record('cdrom'))
    assert ph.read_record(xml) == {'state': 'pending', 'source': 'cdrom'}
    root = parse(xml)
    assert root.find('metadata/{urn:other}x') is not None
    again = ph.add_record(xml, {'state': 'completed', 'source': 'cdrom'})
    assert len(parse(again).findall('metadata/{%s}install' % ph.RECORD_NS)) == 1
    bare = final().replace("<metadata><other:x xmlns:other='urn:other'/></metadata>", '')
    root = parse(ph.add_record(bare, ph.new_record('pxe')))
    assert [c.tag for c in root][:3] == ['name', 'uuid', 'metadata']
    with pytest.raises(ValueError):
        ph.new_record('floppy')


# ---------------------------------------------------------------- issue 26: crashed installers

@pytest.mark.parametrize('reason,word', [(2, "'destroyed'"), (3, "'crashed'"), (6, "'failed'"),
                                         (0, "'unknown'")])
def test_an_installer_that_did_not_power_off_is_not_finished(reason, word):
    dom = FakeDom(record={'state': 'pending', 'source': 'location'}, install_ticks=2)
    dom.reason = reason
    with pytest.raises(ph.InstallPhaseError) as exc:
        go(dom, wait=-1)
    msg = str(exc.value)
    assert word in msg and 'did not finish' in msg and 'remove_storage: true' in msg
    assert 'virsh start g1' in msg and 'serial log' in msg
    assert dom.record['state'] == 'started' and dom.created_final == 0
    # a later run (also in check mode) refuses it too; the final config is never started
    for check in (True, False):
        with pytest.raises(ph.InstallPhaseError):
            go(dom, wait=0, check=check)
    assert dom.record['state'] == 'started' and dom.created_final == 0
    # the fix for "it did finish": the user starts it; the next run ends the install phase
    dom.create()
    res = go(dom, wait=0)
    assert res['install_phase'] == 'completed' and dom.record['state'] == 'completed'


def test_a_pending_record_another_run_started_meanwhile_is_followed_not_restarted():
    dom = FakeDom(record={'state': 'pending', 'source': 'location'}, install_ticks=100)
    conn = FakeConn(dom)
    stale = dict(dom.record)
    ok_ = go(dom, conn, wait=0)             # run A starts the installer
    assert ok_['started_installer'] and dom.record['state'] == 'started'
    first_xml = conn.xml
    conn.xml = None
    res = ph.run(conn, dom, stale, True, 0, lambda c: PLAN, final())  # run B read 'pending'
    assert not res['started_installer'] and res['install_phase'] == 'started'
    assert conn.xml is None and dom.record['state'] == 'started' and first_xml


def test_a_failed_start_never_resets_the_record_of_a_running_installer():
    dom = FakeDom(record={'state': 'pending', 'source': 'location'})

    class Racing(FakeConn):
        def createXML(self, xml, flags):
            # another run's installer started between this run's check and its createXML
            self.dom.running, self.dom.installer = True, True
            raise RuntimeError('domain is already active')
    with pytest.raises(ph.InstallPhaseError):
        go(dom, Racing(dom))
    assert dom.record['state'] == 'started'


def test_install_lock_serialises_two_holders(tmp_path):
    class Dom(object):
        def UUIDString(self):
            return '3b0c1f2e-8d7a-4c55-9f7e-0123456789ab'
    clock = Clock()
    with ph.install_lock(Dom(), lock_dir=str(tmp_path / 'locks')) as held:
        assert held.fd is not None
        with pytest.raises(ph.InstallPhaseError) as exc:
            with ph.install_lock(Dom(), lock_dir=str(tmp_path / 'locks'), wait=1,
                                 monotonic=clock.monotonic, sleep=clock.sleep):
                pass
        assert 'install lock' in str(exc.value) and clock.t >= 1
    with ph.install_lock(Dom(), lock_dir=str(tmp_path / 'locks')) as again:
        assert again.fd is not None
