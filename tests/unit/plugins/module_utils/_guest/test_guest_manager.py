"""GuestManager against libvirt's in-process test driver (test:///default): no daemon,
no QEMU. The test driver only runs domains of type 'test', so the virt_type decision is
replaced by a stub (the real decision is covered by the kvm_capability tests and by the
integration tests against libvirtd)."""
import os
import shutil
import tempfile
import uuid

import pytest

libvirt = pytest.importorskip('libvirt')

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import manager as M  # noqa: E402
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import host as H  # noqa: E402
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features.base import Feature  # noqa: E402
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A  # noqa: E402

GIB = 1024 ** 3


@pytest.fixture
def conn(monkeypatch):
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    monkeypatch.setattr(H, 'decide_virt_type', lambda spec, conn, caps=None: {
        'requested': spec.get('virt_type'), 'domain_type': 'test', 'reasons': ['stub']})
    c = libvirt.open('test:///default')
    yield c
    c.close()


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix='kvmops-mgr-')
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


@pytest.fixture
def name(conn):
    n = 'kvmops-unit-' + uuid.uuid4().hex[:8]
    yield n
    try:
        dom = conn.lookupByName(n)
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    except libvirt.libvirtError:
        pass


def run(conn, params, check=False, diff=False, warnings=None):
    spec = A.normalize(params)
    mgr = M.GuestManager(conn, spec, check_mode=check, diff_mode=diff,
                         warn=(warnings.append if warnings is not None else None))
    return mgr.run()


def base(name, workdir, **extra):
    p = dict(name=name, memory=256, vcpus=1, networks=[], graphics={'type': 'none'},
             disks=[{'path': os.path.join(workdir, 'root.img'), 'size': 10}])
    p.update(extra)
    return p


def test_check_mode_creates_nothing(conn, name, workdir):
    res = run(conn, base(name, workdir), check=True, diff=True)
    assert res['changed'] and 'would create disk %s/root.img' % workdir in res['actions']
    assert res['diff']['after'].startswith('<domain type="test">')
    assert os.listdir(workdir) == []
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(name)


def test_create_rerun_drift_restart_absent(conn, name, workdir):
    res = run(conn, base(name, workdir))
    assert res['changed'] and res['state'] == 'running' and res['uuid']
    assert os.path.getsize(os.path.join(workdir, 'root.img')) == 10 * GIB
    assert not run(conn, base(name, workdir))['changed']
    res = run(conn, base(name, workdir, memory=512), diff=True)
    assert res['changed'] and res['restart_required']
    assert res['differences'] == [{'item': 'memory', 'before': '256 MiB', 'after': '512 MiB'}]
    res = run(conn, base(name, workdir, memory=512, restart=True, vcpus=2))
    assert res['changed'] and not res['restart_required']
    assert res['actions'] == ['updated definition', 'shut down', 'started']
    dom = conn.lookupByName(name)
    assert dom.info()[1] == 512 * 1024 and dom.info()[3] == 2
    res = run(conn, {'name': name, 'state': 'stopped'})
    assert res['state'] == 'stopped' and res['changed']
    res = run(conn, {'name': name, 'state': 'absent'})
    assert res['changed'] and res['state'] == 'absent'
    assert os.path.exists(os.path.join(workdir, 'root.img'))  # disks kept
    assert not run(conn, {'name': name, 'state': 'absent'})['changed']


def test_update_false_only_reports(conn, name, workdir):
    run(conn, base(name, workdir, state='present'))
    warnings = []
    res = run(conn, base(name, workdir, state='present', memory=1024, update=False),
              warnings=warnings)
    assert not res['changed'] and res['differences'][0]['item'] == 'memory'
    assert 'update=false' in warnings[0]
    assert conn.lookupByName(name).info()[1] == 256 * 1024


def test_absent_remove_storage(conn, name, workdir):
    run(conn, base(name, workdir, state='present'))
    res = run(conn, {'name': name, 'state': 'absent', 'remove_storage': True}, check=True)
    assert res['removed_storage'] == [os.path.join(workdir, 'root.img')]
    assert os.path.exists(os.path.join(workdir, 'root.img'))
    res = run(conn, {'name': name, 'state': 'absent', 'remove_storage': True})
    assert not os.path.exists(os.path.join(workdir, 'root.img'))


def test_define_refused_rolls_back_new_images(conn, name, workdir, monkeypatch):
    def refuse(xml):
        raise libvirt.libvirtError('refused by test')
    monkeypatch.setattr(conn, 'defineXML', refuse)
    with pytest.raises(M.DomainError, match='refused'):
        run(conn, base(name, workdir))
    assert os.listdir(workdir) == []


def test_storage_problems_fail_before_anything_changes(conn, name, workdir):
    params = base(name, workdir, disks=[{'path': os.path.join(workdir, 'new.img'), 'size': 1},
                                        {'path': os.path.join(workdir, 'missing.img')}])
    with pytest.raises(M.DomainError, match='no size was given'):
        run(conn, params)
    assert os.listdir(workdir) == []


def test_autostart(conn, name, workdir):
    run(conn, base(name, workdir, state='present'))
    res = run(conn, base(name, workdir, state='present', autostart=True))
    assert res['changed'] and conn.lookupByName(name).autostart()
    assert not run(conn, base(name, workdir, state='present', autostart=True))['changed']


def test_start_new_domain_is_the_seam_for_the_install_phase(conn, name, workdir):
    calls = []

    class Installer(Feature):
        def start_new(self, m, dom):
            calls.append(dom.name())
            m.start(dom)
            return True

    spec = A.normalize(base(name, workdir))
    M.GuestManager(conn, spec, features=[Installer()]).run()
    M.GuestManager(conn, spec, features=[Installer()]).run()  # existing domain: not "new" any more
    assert calls == [name]


def test_vnc_and_serial_info():
    from lxml import etree
    tree = etree.fromstring(b"""<domain><devices>
      <serial type='pty'><source path='/dev/pts/7'/></serial>
      <graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>
        <listen type='address' address='127.0.0.1'/></graphics></devices></domain>""")
    assert M.vnc_info(tree) == {'listen': '127.0.0.1', 'port': 5901, 'display': ':1'}
    assert M.serial_path(tree) == '/dev/pts/7'
    tree = etree.fromstring(b"""<domain><devices><graphics type='vnc' port='-1'>
      <listen type='address'/></graphics></devices></domain>""")
    assert M.vnc_info(tree) == {'listen': None, 'port': None, 'display': None}


class FakeCaps(object):
    """Only getCapabilities(): an x86_64 host with an aarch64 guest emulator."""
    def getCapabilities(self):
        return """<capabilities><host><cpu><arch>x86_64</arch></cpu></host>
          <guest><os_type>hvm</os_type><arch name='x86_64'>
            <machine canonical='pc-i440fx-7.2'>pc</machine>
            <machine canonical='pc-q35-7.2'>q35</machine></arch></guest>
          <guest><os_type>hvm</os_type><arch name='aarch64'>
            <machine canonical='virt-7.2'>virt</machine></arch></guest></capabilities>"""


def test_host_facts_machine_aliases_and_foreign_arch_is_emulated():
    kvm = {'requested': 'auto', 'domain_type': 'kvm', 'reasons': ['KVM works.']}
    host = H.host_facts(FakeCaps(), A.normalize({'name': 'a'}), dict(kvm, reasons=[]))
    assert host['arch'] == 'x86_64' and host['domain_type'] == 'kvm'
    assert host['machine_aliases'] == {'pc': 'pc-i440fx-7.2', 'q35': 'pc-q35-7.2'}
    decision = dict(kvm, reasons=['KVM works.'])
    host = H.host_facts(FakeCaps(), A.normalize({'name': 'a', 'arch': 'aarch64'}), decision)
    assert host['domain_type'] == 'qemu' and 'foreign' in decision['reasons'][-1]
    assert host['machine_aliases'] == {'virt': 'virt-7.2'}
    explicit = {'requested': 'kvm', 'domain_type': 'kvm', 'reasons': []}
    assert H.host_facts(FakeCaps(), A.normalize({'name': 'a', 'arch': 'aarch64'}),
                        explicit)['domain_type'] == 'kvm'  # asked for: libvirt will say no


class IgnoresAcpi(object):
    """A real test-driver domain whose guest ignores the ACPI power button (the test driver
    cannot run a guest that does; the tiny guest powers off on it)."""

    def __init__(self, dom):
        self._dom = dom

    def shutdown(self):
        pass

    def __getattr__(self, name):
        return getattr(self._dom, name)


def test_shutdown_timeout_bounds_the_wait_and_never_pulls_the_plug(conn, name, workdir):
    run(conn, base(name, workdir))
    assert A.normalize({'name': name})['shutdown_timeout'] == 120
    spec = A.normalize(base(name, workdir, shutdown_timeout=1, state='stopped'))
    mgr = M.GuestManager(conn, spec)
    dom = conn.lookupByName(name)
    with pytest.raises(M.DomainError) as exc:
        mgr.shutdown(IgnoresAcpi(dom))
    msg = str(exc.value)
    assert 'shutdown_timeout=1s' in msg and 'virsh destroy %s' % name in msg
    assert dom.isActive()  # still running: the module does not destroy it
    mgr.shutdown(dom)  # a guest that handles ACPI stops within the timeout
    assert not dom.isActive() and mgr.actions == ['shut down']


class DiesOnCreate(object):
    """The daemon killed during dom.create(): a stand-in, because the test driver cannot lose
    its connection (the real kill is test_faults_daemon.py::test_libvirtd_killed_during_start)."""

    def create(self):
        raise libvirt.libvirtError('End of file while reading data: Input/output error')


class DeadConnection(object):
    def isAlive(self):
        return False


def test_a_start_the_daemon_dies_in_names_the_cause_and_the_fix(conn, name, workdir):
    spec = A.normalize(base(name, workdir))
    mgr = M.GuestManager(conn, spec)
    mgr.conn = DeadConnection()
    with pytest.raises(M.DomainError) as exc:
        mgr.start(DiesOnCreate())
    msg = str(exc.value)
    assert 'connection to libvirtd was lost while handling the start of %s' % name in msg
    assert 'Start libvirtd' in msg and 'run again' in msg
    mgr.conn = conn  # alive: libvirt's own reason, as before
    with pytest.raises(M.DomainError, match='Cannot start %s: End of file' % name):
        mgr.start(DiesOnCreate())
