"""kvm_capability_facts on the project's own machine, through a real ansible-playbook run.

This host is the contradictory case the module exists for: /dev/kvm is a kvm_pvm device that
answers ioctls, the CPU has no vmx/svm, libvirt advertises domain type kvm, and KVM guests
hang. The facts must say qemu, explain why, and still report what libvirt advertises. Every
claim is verified independently (libvirt-python, /proc, /sys, os.stat), never via the module.
"""
import hashlib
import os
import shutil
import stat

import pytest

from support.ansible_run import run_module
from support.paths import FIXTURES, URI

HOST_FILES = ('/dev/kvm', '/etc/libvirt/qemu.conf', '/etc/group', '/etc/passwd')


def _snapshot():
    out = {}
    for p in HOST_FILES:
        st = os.stat(p)
        digest = None
        if stat.S_ISREG(st.st_mode):
            with open(p, 'rb') as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        out[p] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, digest)
    return out


def _cpu_has_virt_flag():
    with open('/proc/cpuinfo') as f:
        for line in f:
            key, dummy, value = line.partition(':')
            if key.strip() == 'flags' and set(value.split()) & {'vmx', 'svm'}:
                return True
    return False


def _libvirt_domain_types(conn):
    import xml.etree.ElementTree as ET
    caps = ET.fromstring(conn.getCapabilities())
    arch = caps.findtext('host/cpu/arch')
    types = set()
    for guest in caps.findall('guest'):
        a = guest.find('arch')
        if a is not None and a.get('name') == arch:
            types.update(d.get('type') for d in a.findall('domain'))
    return types


@pytest.fixture(scope='module')
def contradictory_host():
    """Skip (with the reason) when this is not the machine kind the test is about."""
    if _cpu_has_virt_flag() or not os.path.isdir('/sys/module/kvm_pvm'):
        pytest.skip('this test documents the project machine: kvm_pvm /dev/kvm without vmx/svm')


def test_facts_say_qemu_while_libvirt_advertises_kvm(conn, contradictory_host):
    before = _snapshot()
    checked = run_module('kvm_capability_facts', {'uri': URI}, check=True)
    real = run_module('kvm_capability_facts', {'uri': URI})
    again = run_module('kvm_capability_facts', {'uri': URI}, check=True)
    for r in (checked, real, again):
        assert r.get('failed') is not True, r.get('msg')
        assert r['changed'] is False
    facts = real['ansible_facts']['kvm_capability']
    # Check mode returns the same facts, before and after a normal run.
    assert checked['ansible_facts'] == real['ansible_facts'] == again['ansible_facts']

    # The decision, and reasons a sysadmin can act on.
    assert facts['kvm_usable'] is False
    assert facts['domain_type'] == 'qemu'
    text = '\n'.join(facts['reasons'])
    assert 'no vmx/svm flag' in text
    assert '/dev/kvm is provided by kvm_pvm' in text
    assert 'libvirt nevertheless advertises domain type "kvm"' in text
    assert 'QEMU software emulation' in facts['reasons'][-1]

    # Independent verification of what the facts claim about the host.
    assert facts['virt_extension'] is None and facts['virt_flag_count'] == 0
    with open('/proc/cpuinfo') as f:
        cpus = sum(1 for line in f if line.split(':')[0].strip() == 'processor')
    assert facts['logical_cpus'] == cpus == os.cpu_count()
    assert facts['arch'] == os.uname()[4]
    assert sorted(facts['kvm_modules']) == sorted(
        m for m in os.listdir('/sys/module') if m == 'kvm' or m.startswith('kvm_'))
    st = os.stat('/dev/kvm')
    dev = facts['kvm_device']
    assert dev['present'] and dev['char_device'] and stat.S_ISCHR(st.st_mode)
    assert dev['mode'] == '%04o' % stat.S_IMODE(st.st_mode)
    assert facts['devices']['/dev/net/tun'] is os.path.exists('/dev/net/tun')
    assert facts['devices']['/dev/vhost-net'] is os.path.exists('/dev/vhost-net')
    results = dict((c['name'], c['result']) for c in facts['checks'])
    assert results['hardware virtualization'] == 'FAIL'
    assert results['kvm kernel module'] == 'FAIL'
    assert results['libvirt'] == 'PASS'

    # The libvirt section reports what libvirt advertises (checked with libvirt-python).
    lv = facts['libvirt']
    advertised = _libvirt_domain_types(conn)
    assert 'kvm' in advertised
    assert lv['connected'] is True and lv['advertises_kvm'] is True
    assert set(lv['domain_types']) == advertised
    n = conn.getLibVersion()
    assert lv['library_version'] == '%d.%d.%d' % (n // 1000000, (n // 1000) % 1000, n % 1000)
    n = conn.getVersion()
    assert lv['hypervisor_version'] == '%d.%d.%d' % (n // 1000000, (n // 1000) % 1000, n % 1000)
    assert lv['daemon_mode'] == 'monolithic'  # Debian 12: libvirtd, no virtqemud
    assert 'libvirtd' in lv['daemons_running']
    assert os.path.exists(lv['emulators']['qemu']) and os.access(lv['emulators']['qemu'], os.X_OK)
    assert facts['emulator'] == lv['emulators']['qemu']

    # The module changed nothing.
    assert _snapshot() == before


def test_require_kvm_fails_with_the_reasons(contradictory_host):
    r = run_module('kvm_capability_facts', {'uri': URI, 'require': 'kvm'})
    assert r.get('failed') is True
    assert r['msg'].startswith('KVM is not usable on this host')
    assert 'kvm_pvm' in r['msg'] and 'vmx/svm' in r['msg']
    assert r['ansible_facts']['kvm_capability']['domain_type'] == 'qemu'


def test_unreachable_libvirt_is_reported_not_fatal(contradictory_host):
    uri = 'qemu+unix:///system?socket=/nonexistent/kvmops-facts.sock'
    r = run_module('kvm_capability_facts', {'uri': uri})
    assert r.get('failed') is not True, r.get('msg')
    facts = r['ansible_facts']['kvm_capability']
    lv = facts['libvirt']
    assert lv['connected'] is False and lv['installed'] is True
    assert '/nonexistent/kvmops-facts.sock' in lv['summary'] and 'did not answer' in lv['summary']
    assert facts['domain_type'] == 'qemu'
    assert facts['emulator'] is not None and os.path.exists(facts['emulator'])


def test_root_option_inspects_another_tree(tmp_path):
    """A fake Intel host tree (real cpuinfo dump; /dev/kvm is a regular-file stand-in)."""
    root = tmp_path / 'host'
    (root / 'proc').mkdir(parents=True)
    shutil.copy(os.path.join(FIXTURES, 'cpuinfo', 'intel-core-i7-1370p-hybrid-pe.txt'),
                str(root / 'proc' / 'cpuinfo'))
    for m in ('kvm', 'kvm_intel'):
        (root / 'sys' / 'module' / m / 'parameters').mkdir(parents=True)
    (root / 'sys' / 'module' / 'kvm_intel' / 'parameters' / 'nested').write_text('Y\n')
    (root / 'dev').mkdir()
    (root / 'dev' / 'kvm').write_text('')
    os.chmod(str(root / 'dev' / 'kvm'), 0o666)
    r = run_module('kvm_capability_facts', {'root': str(root), 'require': 'kvm'})
    assert r.get('failed') is not True, r.get('msg')
    facts = r['ansible_facts']['kvm_capability']
    assert (facts['virt_extension'], facts['virt_flag_count'], facts['logical_cpus']) == ('vmx', 20, 20)
    assert facts['domain_type'] == 'kvm' and facts['nested'] is True
    assert facts['libvirt']['connected'] is False  # another tree: the live daemon is not asked
