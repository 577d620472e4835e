"""Unit tests of gather_kvm_capability over fake host trees built in tmp_path.

What is real and what is faked, per tree (see make_tree):
* proc/cpuinfo: a real-world dump from tests/fixtures/cpuinfo (MANIFEST.md there), byte-for-byte;
* sys/module/<name>/parameters/nested, dev/net/tun, dev/vhost-net, proc/mounts, etc/passwd,
  etc/group, etc/os-release, etc/libvirt/qemu.conf: small synthetic files in the layout the
  kernel and distributions use;
* dev/kvm: a REGULAR FILE stand-in (no device node is created), with the mode under test; its
  group is a fake "kvm" group (gid 4242 when the tests run as root, else the test user's group).
* the libvirt connection, where used, is FakeConn below: a stand-in that returns capabilities
  XML shaped like libvirt 9.0.0's on the project's machine. The real daemon is exercised by
  tests/integration/test_kvm_capability_facts.py.
"""
import json
import os

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._host import kvm_capability as kc

from support.paths import FIXTURES

CPUINFO = os.path.join(FIXTURES, 'cpuinfo')
with open(os.path.join(CPUINFO, 'expected.json')) as _f:
    EXPECTED = json.load(_f)

AS_ROOT = os.geteuid() == 0
KVM_GID = 4242 if AS_ROOT else os.getegid()
OWNER_UID = 0 if AS_ROOT else os.geteuid()

MOUNTS_V1 = '\n'.join(
    'cgroup /sys/fs/cgroup/%s cgroup rw,relatime,%s 0 0' % (c, c)
    for c in ('cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'blkio', 'pids')) + '\n'


def _write(root, rel, text, mode=None):
    path = os.path.join(str(root), rel)
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        os.makedirs(d)
    with open(path, 'w') as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)
    return path


def make_tree(tmp_path, cpuinfo='intel-xeon-gold-6230-80cpu.txt', modules=None, kvm_mode=0o660,
              os_id='debian', qemu_conf=None, extra_users='', kvm_members='',
              mounts=MOUNTS_V1, vhost=True, tun=True):
    """A fake host tree. modules: {name: nested value or None}."""
    root = tmp_path / 'host'
    with open(os.path.join(CPUINFO, cpuinfo)) as f:
        _write(root, 'proc/cpuinfo', f.read())
    for name, nested in (modules or {}).items():
        os.makedirs(str(root / 'sys' / 'module' / name / 'parameters'))
        if nested is not None:
            _write(root, 'sys/module/%s/parameters/nested' % name, nested + '\n')
    if kvm_mode is not None:
        path = _write(root, 'dev/kvm', '', mode=kvm_mode)  # stand-in: regular file
        if AS_ROOT:
            os.chown(path, 0, KVM_GID)
    if vhost:
        _write(root, 'dev/vhost-net', '')
    if tun:
        _write(root, 'dev/net/tun', '')
    if mounts is not None:
        _write(root, 'proc/mounts', mounts)
    owner = '' if OWNER_UID == 0 else 'tester:x:%d:%d::/:/bin/sh\n' % (OWNER_UID, KVM_GID)
    _write(root, 'etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n' + owner +
           'libvirt-qemu:x:64055:%d:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n' % KVM_GID
           + extra_users)
    groups = 'root:x:0:\nlibvirt-qemu:x:64055:libvirt-qemu\n'
    if KVM_GID != 0:
        groups += 'kvm:x:%d:%s\n' % (KVM_GID, kvm_members)
    _write(root, 'etc/group', groups)
    _write(root, 'etc/os-release', 'ID=%s\n' % os_id)
    if qemu_conf is not None:
        _write(root, 'etc/libvirt/qemu.conf', qemu_conf)
    return str(root)


CAPS = """<capabilities>
  <host><cpu><arch>x86_64</arch><model>kvm64</model><vendor>AMD</vendor></cpu></host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='i686'><wordsize>32</wordsize><emulator>/bin/qemu-system-i386</emulator>
      <domain type='qemu'/><domain type='kvm'/></arch>
  </guest>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'><wordsize>64</wordsize><emulator>/bin/qemu-system-x86_64</emulator>
      <machine>pc-i440fx-7.2</machine>
      %s</arch>
  </guest>
</capabilities>"""


class FakeConn(object):
    """Stand-in for a libvirt connection (see the module docstring)."""

    def __init__(self, domains="<domain type='qemu'/><domain type='kvm'/>", fail=False):
        self.domains = domains
        self.fail = fail

    def getLibVersion(self):
        if self.fail:
            raise RuntimeError('End of file while reading data: Input/output error')
        return 9000000

    def getType(self):
        return 'QEMU'

    def getVersion(self):
        return 7002022

    def getCapabilities(self):
        return CAPS % self.domains

    def getDomainCapabilities(self, emulator, arch, machine, virttype, flags):
        raise RuntimeError('operation forbidden: read only access prevents virConnectGetDomainCapabilities')


def check(facts, name):
    found = [c for c in facts['checks'] if c['name'] == name]
    assert len(found) == 1, facts['checks']
    return found[0]


# Per fixture: the kernel side we give the fake tree, and the decision it must lead to.
SCENARIOS = {
    'intel-core-i5-m560-laptop.txt': ({'kvm': None, 'kvm_intel': 'N'}, True, 'kvm', 'vmx on 4 of 4'),
    'intel-xeon-gold-6230-80cpu.txt': ({'kvm': None, 'kvm_intel': 'Y'}, True, 'kvm', 'vmx on 80 of 80'),
    'intel-core-i7-1370p-hybrid-pe.txt': ({'kvm': None, 'kvm_intel': 'Y'}, True, 'kvm', 'vmx on 20 of 20'),
    'amd-epyc-7451-96cpu.txt': ({'kvm': None, 'kvm_amd': '1'}, True, 'kvm', 'svm on 96 of 96'),
    'amd-zen5-single-cpu-excerpt.txt': ({'kvm': None, 'kvm_amd': '1'}, True, 'kvm', 'svm on 1 of 1'),
    # Hosts without the flag: no vendor module can load, so there is no /dev/kvm either.
    'amd-opteron-865-no-svm.txt': ({}, False, 'qemu', 'enable it in the firmware'),
    'vm-aws-ec2-xeon-8259cl.txt': ({}, False, 'qemu', 'itself a virtual machine'),
    'vm-kvm-qemu-skylake-ibrs.txt': ({}, False, 'qemu', 'itself a virtual machine'),
    # arm64: no flag; the Kunpeng server has /dev/kvm (kvm built in, nothing in /sys/module),
    # the phone has none.
    'arm64-kunpeng920-128cpu.txt': ({}, True, 'kvm', 'aarch64 CPUs have no virtualization flag'),
    'arm64-processor-header-oneplus3t.txt': ({}, False, 'qemu', '/dev/kvm does not exist'),
    'ppc64le-power9-ac922-176cpu.txt': ({'kvm': None, 'kvm_hv': None}, True, 'kvm', 'The kvm_hv module is loaded'),
    's390x-z13-lpar-sie.txt': ({'kvm': '1'}, True, 'kvm', 'sie on 8 of 8'),
}


def test_scenarios_cover_every_fixture():
    assert sorted(SCENARIOS) == sorted(EXPECTED)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_fixture_trees(tmp_path, name):
    modules, usable, dtype, phrase = SCENARIOS[name]
    has_kvm = usable
    root = make_tree(tmp_path, cpuinfo=name, modules=modules, kvm_mode=0o660 if has_kvm else None)
    facts = kc.gather_kvm_capability(root=root)
    exp = EXPECTED[name]
    assert facts['arch'] == exp['arch']
    assert facts['cpu_vendor'] == exp['vendor']
    assert facts['logical_cpus'] == exp['logical_cpus']
    assert facts['virt_extension'] == exp['virt_extension']
    assert facts['virt_flag_count'] == exp['flag_count']
    assert facts['hypervisor'] is exp['hypervisor_flag']
    assert facts['kvm_modules'] == sorted(modules)
    assert facts['kvm_usable'] is usable
    assert facts['domain_type'] == dtype
    assert any(phrase in r for r in facts['reasons']), facts['reasons']
    if not usable:
        assert 'QEMU software emulation' in facts['reasons'][-1]
    assert [c['name'] for c in facts['checks']] == [
        'hardware virtualization', 'kvm kernel module', '/dev/kvm exists'] + (
        ['/dev/kvm is accessible'] if has_kvm else []) + [
        '/dev/vhost-net exists', '/dev/net/tun exists', 'cgroup controllers', 'IOMMU enabled', 'libvirt']
    assert all(c['result'] in ('PASS', 'WARN', 'FAIL') for c in facts['checks'])
    # The facts' key set promised to virt_install_domain.
    for key in ('arch', 'cpu_vendor', 'cpu_model', 'logical_cpus', 'virt_extension',
                'virt_flag_count', 'hypervisor', 'kvm_device', 'kvm_modules', 'nested',
                'kvm_usable', 'domain_type', 'reasons', 'checks', 'libvirt', 'emulator'):
        assert key in facts
    json.dumps(facts)  # plain data only


@pytest.mark.parametrize('name, value, expected', [
    ('kvm_intel', 'Y', True), ('kvm_intel', 'N', False), ('kvm_amd', '1', True),
    ('kvm_amd', '0', False), ('kvm_intel', None, None),
])
def test_nested_parameter(tmp_path, name, value, expected):
    cpu = 'intel-xeon-gold-6230-80cpu.txt' if name == 'kvm_intel' else 'amd-epyc-7451-96cpu.txt'
    facts = kc.gather_kvm_capability(root=make_tree(tmp_path, cpuinfo=cpu, modules={'kvm': None, name: value}))
    assert facts['kvm_vendor_module'] == name
    assert facts['nested'] is expected
    assert any('Nested virtualization is off' in r for r in facts['reasons']) is (expected is False)


def test_this_machine_kvm_pvm_without_vmx_while_libvirt_advertises_kvm(tmp_path):
    """The project's CI host: no vmx/svm, hypervisor flag, /dev/kvm from kvm_pvm, libvirt says kvm."""
    root = make_tree(tmp_path, cpuinfo='vm-kvm-qemu-skylake-ibrs.txt',
                     modules={'kvm': None, 'kvm_pvm': None})
    facts = kc.gather_kvm_capability(root=root, conn=FakeConn(), uri='qemu:///system')
    assert facts['kvm_usable'] is False
    assert facts['domain_type'] == 'qemu'
    text = '\n'.join(facts['reasons'])
    assert 'no vmx/svm flag' in text
    assert 'itself a virtual machine' in text
    assert '/dev/kvm is provided by kvm_pvm' in text and 'hang' in text
    assert 'libvirt nevertheless advertises domain type "kvm"' in text
    assert facts['reasons'][-1].startswith('Guests will run under QEMU software emulation')
    assert check(facts, 'kvm kernel module')['result'] == 'FAIL'
    assert check(facts, '/dev/kvm exists')['result'] == 'WARN'  # a regular-file stand-in
    lv = facts['libvirt']
    assert lv['connected'] and lv['advertises_kvm']
    assert lv['domain_types'] == ['qemu', 'kvm']
    assert (lv['library_version'], lv['hypervisor_name'], lv['hypervisor_version']) == ('9.0.0', 'QEMU', '7.2.22')
    assert lv['guest_arches'] == ['i686', 'x86_64']
    # getDomainCapabilities refused (read-only): the capabilities' emulator is kept.
    assert lv['emulators'] == {'qemu': '/bin/qemu-system-x86_64', 'kvm': '/bin/qemu-system-x86_64'}
    assert facts['emulator'] == '/bin/qemu-system-x86_64'


def test_vmx_without_kvm_intel_says_modprobe(tmp_path):
    facts = kc.gather_kvm_capability(root=make_tree(tmp_path, modules={'kvm': None}))
    assert facts['domain_type'] == 'qemu'
    assert any('modprobe kvm_intel' in r and 'disabled by bios' in r for r in facts['reasons'])


def test_svm_host_names_kvm_amd(tmp_path):
    facts = kc.gather_kvm_capability(root=make_tree(tmp_path, cpuinfo='amd-epyc-7451-96cpu.txt', modules={}))
    assert any('modprobe kvm_amd' in r and 'AMD-V' in r for r in facts['reasons'])


def test_qemu_user_without_access_blocks_kvm(tmp_path):
    root = make_tree(tmp_path, modules={'kvm': None, 'kvm_intel': 'Y'}, kvm_mode=0o600)
    facts = kc.gather_kvm_capability(root=root)
    dev = facts['kvm_device']
    assert dev['qemu_user'] == 'libvirt-qemu'
    assert dev['qemu_user_source'] == 'the libvirt default on Debian/Ubuntu'
    assert dev['qemu_access'] is False and dev['mode'] == '0600'
    assert facts['domain_type'] == 'qemu'
    assert any('chmod 0660 /dev/kvm' in r and 'libvirt-qemu' in r for r in facts['reasons'])
    assert check(facts, '/dev/kvm is accessible')['result'] == 'FAIL'


def test_qemu_running_as_root_per_qemu_conf(tmp_path):
    conf = '#user = "libvirt-qemu"\nuser = "+0"  # run as root\n#group = "libvirt-qemu"\n'
    root = make_tree(tmp_path, modules={'kvm': None, 'kvm_intel': 'Y'}, kvm_mode=0o600, qemu_conf=conf)
    facts = kc.gather_kvm_capability(root=root)
    dev = facts['kvm_device']
    assert (dev['qemu_user'], dev['qemu_access'], dev['qemu_access_via']) == ('root', True, 'root')
    assert dev['qemu_user_source'].startswith('/etc/libvirt/qemu.conf')
    assert facts['domain_type'] == 'kvm'


def test_rhel_default_qemu_user_via_kvm_membership(tmp_path):
    root = make_tree(tmp_path, modules={'kvm': None, 'kvm_intel': 'Y'}, os_id='rhel',
                     extra_users='qemu:x:107:107:qemu user:/:/sbin/nologin\n', kvm_members='qemu')
    with open(os.path.join(root, 'etc/group'), 'a') as f:
        f.write('qemu:x:107:\n')
    facts = kc.gather_kvm_capability(root=root)
    dev = facts['kvm_device']
    assert (dev['qemu_user'], dev['qemu_group']) == ('qemu', 'qemu')
    assert dev['qemu_access'] is True and dev['qemu_access_via'].startswith('group ')
    assert facts['domain_type'] == 'kvm'


def test_qemu_user_not_in_kvm_group(tmp_path):
    conf = 'user = "qemu"\ngroup = "qemu"\n'
    root = make_tree(tmp_path, modules={'kvm': None, 'kvm_intel': 'Y'}, qemu_conf=conf,
                     extra_users='qemu:x:107:107:qemu user:/:/sbin/nologin\n')
    facts = kc.gather_kvm_capability(root=root)
    assert facts['kvm_device']['qemu_user_source'] == '/etc/libvirt/qemu.conf'
    assert facts['kvm_device']['qemu_access'] is False
    assert facts['domain_type'] == 'qemu'


def test_unknown_qemu_user_warns_but_does_not_block(tmp_path):
    root = make_tree(tmp_path, modules={'kvm': None, 'kvm_intel': 'Y'}, qemu_conf='user = "nobody-here"\n')
    facts = kc.gather_kvm_capability(root=root)
    assert facts['kvm_device']['qemu_access'] is None
    assert check(facts, '/dev/kvm is accessible')['result'] == 'WARN'
    assert facts['domain_type'] == 'kvm'


def test_libvirt_not_advertising_kvm_blocks(tmp_path):
    root = make_tree(tmp_path, modules={'kvm': None, 'kvm_intel': 'Y'})
    facts = kc.gather_kvm_capability(root=root, conn=FakeConn(domains="<domain type='qemu'/>"))
    assert facts['domain_type'] == 'qemu'
    assert any('does not offer domain type "kvm"' in r for r in facts['reasons'])


def test_dead_connection_is_reported_not_raised(tmp_path):
    root = make_tree(tmp_path, modules={'kvm': None, 'kvm_intel': 'Y'})
    facts = kc.gather_kvm_capability(root=root, conn=FakeConn(fail=True), uri='qemu:///system')
    lv = facts['libvirt']
    assert lv['connected'] is False and 'End of file' in lv['error']
    assert 'did not answer' in lv['summary']
    assert facts['domain_type'] == 'kvm'  # the kernel side decides; libvirt could not say
    assert check(facts, 'libvirt')['result'] == 'WARN'


def test_libvirt_absent_or_not_queried(tmp_path):
    root = make_tree(tmp_path, modules={'kvm': None, 'kvm_intel': 'Y'})
    lv = kc.gather_kvm_capability(root=root)['libvirt']
    assert (lv['installed'], lv['connected'], lv['daemon_mode']) == (False, False, None)
    assert 'not installed' in lv['summary']
    _write(root, 'usr/sbin/libvirtd', '')
    lv = kc.gather_kvm_capability(root=root)['libvirt']
    assert lv['installed'] and lv['daemon_mode'] == 'monolithic'
    assert 'not queried' in lv['summary']
    lv = kc.gather_kvm_capability(root=root, libvirt_error='Cannot connect to libvirt', uri='qemu:///system')['libvirt']
    assert 'did not answer on qemu:///system: Cannot connect' in lv['summary']


def test_daemon_mode_from_sockets_and_processes(tmp_path):
    root = make_tree(tmp_path)
    _write(root, 'usr/sbin/libvirtd', '')
    _write(root, 'usr/sbin/virtqemud', '')
    _write(root, 'run/libvirt/virtqemud-sock', '')
    lv = kc.gather_kvm_capability(root=root)['libvirt']
    assert lv['daemon_mode'] == 'split' and lv['sockets'] == ['/run/libvirt/virtqemud-sock']
    os.unlink(os.path.join(root, 'run/libvirt/virtqemud-sock'))
    _write(root, 'proc/4321/comm', 'libvirtd\n')
    _write(root, 'proc/4322/comm', 'bash\n')
    lv = kc.gather_kvm_capability(root=root)['libvirt']
    assert lv['daemons_running'] == ['libvirtd'] and lv['daemon_mode'] == 'monolithic'


def test_cgroup_v2_only_and_missing_controllers(tmp_path):
    root = make_tree(tmp_path, mounts='cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n')
    _write(root, 'sys/fs/cgroup/cgroup.controllers', 'cpuset cpu io memory hugetlb pids\n')
    facts = kc.gather_kvm_capability(root=root)
    assert facts['cgroup_version'] == 'v2'
    assert check(facts, 'cgroup controllers')['result'] == 'PASS'
    root2 = make_tree(tmp_path / 'b', mounts='cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n')
    c = check(kc.gather_kvm_capability(root=root2), 'cgroup controllers')
    assert c['result'] == 'WARN' and 'memory' in c['detail']
    root3 = make_tree(tmp_path / 'c', mounts=None)
    assert check(kc.gather_kvm_capability(root=root3), 'cgroup controllers')['result'] == 'WARN'


def test_iommu(tmp_path):
    root = make_tree(tmp_path)
    assert check(kc.gather_kvm_capability(root=root), 'IOMMU enabled')['result'] == 'WARN'
    _write(root, 'sys/firmware/acpi/tables/DMAR', '')
    c = check(kc.gather_kvm_capability(root=root), 'IOMMU enabled')
    assert c['result'] == 'WARN' and 'intel_iommu=on' in c['detail']
    os.makedirs(os.path.join(root, 'sys/kernel/iommu_groups/0'))
    os.makedirs(os.path.join(root, 'sys/kernel/iommu_groups/1'))
    facts = kc.gather_kvm_capability(root=root)
    assert facts['iommu_groups'] == 2
    assert check(facts, 'IOMMU enabled')['result'] == 'PASS'


def test_network_devices(tmp_path):
    facts = kc.gather_kvm_capability(root=make_tree(tmp_path, vhost=False, tun=False))
    assert check(facts, '/dev/vhost-net exists')['result'] == 'WARN'
    assert check(facts, '/dev/net/tun exists')['result'] == 'FAIL'
    assert facts['devices'] == {'/dev/vhost-net': False, '/dev/net/tun': False}


@pytest.mark.parametrize('present, expected', [
    (['usr/libexec/qemu-kvm', 'usr/bin/qemu-system-x86_64'], '/usr/libexec/qemu-kvm'),
    (['usr/bin/qemu-system-x86_64', 'usr/bin/kvm'], '/usr/bin/qemu-system-x86_64'),
    (['usr/bin/kvm'], '/usr/bin/kvm'),
    ([], None),
])
def test_emulator_search_without_libvirt(tmp_path, present, expected):
    root = make_tree(tmp_path, modules={'kvm': None, 'kvm_intel': 'Y'})
    for p in present:
        _write(root, p, '')
    assert kc.gather_kvm_capability(root=root)['emulator'] == expected


def test_s390x_emulator_target(tmp_path):
    root = make_tree(tmp_path, cpuinfo='s390x-z13-lpar-sie.txt', modules={'kvm': '1'})
    _write(root, 'usr/bin/qemu-system-s390x', '')
    facts = kc.gather_kvm_capability(root=root)
    assert facts['emulator'] == '/usr/bin/qemu-system-s390x'
    assert facts['nested'] is True


def test_gathering_changes_nothing(tmp_path):
    root = make_tree(tmp_path, modules={'kvm': None, 'kvm_intel': 'Y'})

    def snapshot():
        out = {}
        for d, dirs, files in os.walk(root):
            for n in dirs + files:
                p = os.path.join(d, n)
                st = os.lstat(p)
                out[p] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
        return out
    before = snapshot()
    kc.gather_kvm_capability(root=root, conn=FakeConn())
    assert snapshot() == before


def test_nested_guest_with_vmx_is_usable_and_says_nested(tmp_path):
    """A VM whose hypervisor passes VT-x through: the i5 dump with 'hypervisor' added to every
    flags line (synthetic edit of the fixture text, in the tree only)."""
    root = make_tree(tmp_path, cpuinfo='intel-core-i5-m560-laptop.txt', modules={'kvm': None, 'kvm_intel': 'Y'})
    path = os.path.join(root, 'proc/cpuinfo')
    with open(path) as f:
        text = f.read()
    with open(path, 'w') as f:
        f.write(text.replace(' vmx ', ' vmx hypervisor '))
    facts = kc.gather_kvm_capability(root=root)
    assert facts['hypervisor'] is True and facts['virt_flag_count'] == 4
    assert facts['domain_type'] == 'kvm'
    assert any('itself a virtual machine' in r and 'nested' in r for r in facts['reasons'])
