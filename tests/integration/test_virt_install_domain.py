"""virt_install_domain against the real libvirtd (QEMU/TCG), the community.libvirt way:
check mode, real, check mode again, independent verification (libvirt-python, files),
re-run unchanged, drift, absent.

One tiny guest (the module-scoped `guest`) goes through its whole life, one test per step,
in file order; each step starts from where the one before left it. The UEFI guest is a second
guest of its own. Storage and bad input: test_virt_install_domain_storage.py and
test_virt_install_domain_bad_input.py."""
import os

import libvirt
import pytest

from support.domain_guests import GIB, PASSWORD, assert_ok, tiny_args, vid
from support.libvirt_helpers import lookup_domain, wait_for_text

NEW_PASSWORD = 'n3wPass!'
GEN2 = 'console=ttyS0 kvmops.gen=2'


@pytest.fixture(scope='module')
def guest(module_prefix, module_image_dir, tiny):
    """The life-cycle guest's options and paths; each step updates 'args' for the next."""
    return {'name': module_prefix + 'vm',
            'args': tiny_args(module_prefix, module_image_dir, tiny),
            'dir': module_image_dir,
            'disk': os.path.join(module_image_dir, 'root.img'),
            'log': os.path.join(module_image_dir, 'console.log')}


def inactive_xml(conn, name):
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def test_check_mode_on_a_clean_host_creates_nothing(conn, guest):
    res = assert_ok(vid(guest['args'], check=True, diff=True))
    assert res['changed'] and res['uuid'] is None
    assert lookup_domain(conn, guest['name']) is None
    assert os.listdir(guest['dir']) == []
    assert PASSWORD not in repr(res)
    assert "type=\"qemu\"" in res['diff']['after']  # auto chose emulation on this host


def test_creates_a_sparse_disk_and_boots_without_the_password_on_a_command_line(conn, guest):
    name, disk, log = guest['name'], guest['disk'], guest['log']
    res = assert_ok(vid(guest['args']))
    assert res['changed'] and res['state'] == 'running'
    assert res['virt_type']['domain_type'] == 'qemu' and res['virt_type']['reasons']
    assert os.path.getsize(disk) == 100 * GIB and os.stat(disk).st_blocks * 512 < 1024 ** 2
    console = wait_for_text(log, 'KVMOPS-READY', timeout=90)
    assert 'KVMOPS-CMDLINE: console=ttyS0' in console
    dom = conn.lookupByName(name)
    assert dom.isActive() and res['uuid'] == dom.UUIDString()
    assert res['serial'] == log
    assert res['vnc']['listen'] == '127.0.0.1' and res['vnc']['port'] >= 5900
    assert res['vnc']['display'] == ':%d' % (res['vnc']['port'] - 5900)
    assert PASSWORD not in repr(res) and PASSWORD not in res['_stderr']
    # independent: libvirt's own view; the password reached QEMU without its command line
    live = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    assert "type='qemu'" in live and PASSWORD in live
    pid = open('/run/libvirt/qemu/%s.pid' % name).read().strip()
    assert PASSWORD.encode() not in open('/proc/%s/cmdline' % pid, 'rb').read()


def test_check_mode_again_and_a_rerun_change_nothing(conn, guest):
    before = inactive_xml(conn, guest['name'])
    assert not assert_ok(vid(guest['args'], check=True))['changed']
    res = assert_ok(vid(guest['args']))
    assert not res['changed'] and res['differences'] == []
    assert inactive_xml(conn, guest['name']) == before


def test_a_new_console_password_is_applied_live(conn, guest):
    args = guest['args']
    other = dict(args, graphics=dict(args['graphics'], password=NEW_PASSWORD))
    res = assert_ok(vid(other, diff=True))
    assert res['changed'] and not res['restart_required']
    assert 'console password changed live' in res['actions']
    assert NEW_PASSWORD not in repr(res) and PASSWORD not in repr(res)
    dom = conn.lookupByName(guest['name'])
    assert "passwd='%s'" % NEW_PASSWORD in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    assert not assert_ok(vid(other))['changed']
    guest['args'] = other


def test_memory_and_vcpus_drift_changes_the_definition_not_the_running_guest(conn, guest):
    name = guest['name']
    before = inactive_xml(conn, name)
    bigger = dict(guest['args'], memory=384, vcpus=2)
    # check+diff reports without applying
    res = assert_ok(vid(bigger, check=True, diff=True))
    assert res['changed'] and res['restart_required']
    assert sorted(d['item'] for d in res['differences']) == ['memory', 'vcpus']
    assert '262144' in res['diff']['before'] and '393216' in res['diff']['after']
    assert '<disk' not in res['diff']['before']
    assert inactive_xml(conn, name) == before

    # real: the persistent definition changes, the running guest does not
    res = assert_ok(vid(bigger))
    assert res['changed'] and res['restart_required']
    inactive = inactive_xml(conn, name)
    assert "<memory unit='KiB'>393216</memory>" in inactive
    assert "<vcpu placement='static'>2</vcpu>" in inactive
    assert conn.lookupByName(name).info()[1] == 262144  # live max memory until a restart
    # a re-run changes nothing but keeps saying that the running guest waits (issue 27)
    again = assert_ok(vid(bigger))
    assert not again['changed'] and again['restart_required']
    assert [w for w in again.get('warnings', []) if 'until it restarts' in w and 'memory' in w]
    guest['args'] = bigger


def test_a_later_run_with_restart_applies_the_pending_definition(conn, guest):
    """Nothing differs from the options any more, yet the guest runs its old memory: restart
    applies it (a handler's run), and then nothing is pending."""
    check = assert_ok(vid(dict(guest['args'], restart=True), check=True))
    assert check['changed'] and 'would restart' in check['actions']
    assert conn.lookupByName(guest['name']).info()[1] == 262144
    res = assert_ok(vid(dict(guest['args'], restart=True)))
    assert res['changed'] and not res['restart_required']
    assert 'shut down' in res['actions'] and 'started' in res['actions']
    assert conn.lookupByName(guest['name']).info()[1] == 393216
    # booted again (and so listening for the next test's ACPI power button); QEMU truncated
    # the serial log file when it started, so the marker is the new boot's
    wait_for_text(guest['log'], 'KVMOPS-READY', timeout=180)
    res = assert_ok(vid(guest['args']))
    assert not res['changed'] and not res['restart_required'], res


def test_restart_applies_the_definition_with_a_clean_shutdown(conn, guest):
    # restart: true applies it with a clean shutdown and a start (new cmdline proves it)
    args = dict(guest['args'], cmdline=GEN2)
    res = assert_ok(vid(dict(args, restart=True)))
    assert res['changed'] and not res['restart_required']
    assert 'shut down' in res['actions'] and 'started' in res['actions']
    wait_for_text(guest['log'], 'KVMOPS-CMDLINE: %s' % GEN2, timeout=90)
    dom = conn.lookupByName(guest['name'])
    assert dom.info()[1] == 393216 and dom.info()[3] == 2
    guest['args'] = args


def test_stopped_shuts_the_guest_down_with_acpi(conn, guest):
    res = assert_ok(vid(dict(guest['args'], state='stopped')))
    assert res['changed'] and res['state'] == 'stopped'
    assert not conn.lookupByName(guest['name']).isActive()
    assert 'KVMOPS-POWEROFF' in open(guest['log']).read()


def test_absent_removes_the_domain_and_keeps_the_disk(conn, guest):
    name = guest['name']
    # check mode keeps everything; real removes the domain and keeps the disk
    res = assert_ok(vid({'name': name, 'state': 'absent'}, check=True))
    assert res['changed'] and lookup_domain(conn, name) is not None
    res = assert_ok(vid({'name': name, 'state': 'absent'}))
    assert res['changed'] and lookup_domain(conn, name) is None
    assert os.path.getsize(guest['disk']) == 100 * GIB
    assert not assert_ok(vid({'name': name, 'state': 'absent'}))['changed']


def test_uefi_guest_absent_removes_nvram_idempotently(conn, prefix, image_dir, tiny):
    name = prefix + 'uefi'
    args = tiny_args(prefix, image_dir, tiny, name=name, firmware='uefi', disks=[],
                     graphics={'type': 'none'})
    if not os.path.exists('/usr/share/OVMF'):
        pytest.skip('OVMF is not installed')
    res = assert_ok(vid(args))
    assert res['changed'] and res['state'] == 'running'
    assert "<os firmware='efi'>" in res['xml']
    nvram = '/var/lib/libvirt/qemu/nvram/%s_VARS.fd' % name
    assert os.path.exists(nvram)  # created at the first start
    assert not assert_ok(vid(args))['changed']
    # without remove_storage the NVRAM stays (issue 26: it was always removed); with it, it goes
    res = assert_ok(vid({'name': name, 'state': 'absent'}))
    assert res['changed'] and 'undefined' in res['actions']
    assert lookup_domain(conn, name) is None and os.path.exists(nvram)
    assert_ok(vid(args))
    res = assert_ok(vid({'name': name, 'state': 'absent', 'remove_storage': True}))
    assert lookup_domain(conn, name) is None and not os.path.exists(nvram)
    assert not assert_ok(vid({'name': name, 'state': 'absent'}))['changed']
