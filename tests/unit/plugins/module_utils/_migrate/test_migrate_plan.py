"""virt_migrate's pure half: option checks, flags and parameters, the checks a target must pass
(one reason per failed check), placement tags and the choice of a target; and the generic
domain XML reader in _libvirt/domain_devices.py."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import domain_devices
from ansible_collections.kvmops.hypervisor.plugins.module_utils._migrate import plan

MIB = 1024 * 1024

DOMAIN = """<domain type='qemu'><name>vm1</name><uuid>7f1c1b1e-0000-4000-8000-000000000001</uuid>
  <memory unit='KiB'>524288</memory><currentMemory unit='KiB'>262144</currentMemory>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>%(cpu)s
  <metadata><k:tags xmlns:k='urn:kvmops:hypervisor:tags:1'><k:tag>anti_affinity:db</k:tag>%(tags)s</k:tags></metadata>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='/vm-images/vm1.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>
      <source file='/vm-images/iso/install.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
    <interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/><model type='virtio'/></interface>
    <interface type='bridge'><mac address='52:54:00:00:00:02'/><source bridge='br0'/></interface>
    %(devices)s
  </devices></domain>"""


def guest(cpu='', tags='', devices=''):
    facts = domain_devices.facts(DOMAIN % {'cpu': cpu, 'tags': tags, 'devices': devices})
    facts['live'] = True
    return facts


def spec(**kw):
    params = {'name': 'vm1', 'uri': 'qemu:///system', 'dest_uri': 'qemu+ssh://root@hv2/system',
              'dest_candidates': None, 'storage': 'shared', 'unsafe': False, 'bandwidth': None,
              'timeout': 0, 'timeout_action': 'abort', 'auto_converge': False, 'compression': False,
              'tls': False, 'memory_reserve': 256}
    params.update(kw)
    return plan.normalize(params)


def host(name='hv2', **kw):
    facts = {'name': name, 'uri': 'qemu+ssh://root@%s/system' % name, 'networks': {'default': True},
             'bridges': {'br0', 'eth0'}, 'available_memory_bytes': 4096 * MIB, 'domain_types': ['qemu', 'kvm'],
             'host_cpu': {'vendor': 'Intel', 'model': 'Skylake', 'features': []}, 'cpu_compare': None,
             'pools': [{'name': 'vm-images', 'path': '/vm-images', 'active': True},
                       {'name': 'iso', 'path': '/vm-images/iso', 'active': True}],
             'volumes': {'/vm-images/vm1.qcow2': {'capacity': 1, 'format': 'qcow2'},
                         '/vm-images/iso/install.iso': {'capacity': 1, 'format': 'raw'}},
             'guest_tags': [], 'running_guests': 0}
    facts.update(kw)
    return facts


def reasons(s, g, target, source=None):
    return plan.check_target(s, g, source or host('hv1'), target)[0]


def test_domain_devices_reads_what_a_move_needs():
    g = guest(devices="<hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>")
    assert g['memory_bytes'] == 256 * MIB and g['max_memory_bytes'] == 512 * MIB
    assert [d['target'] for d in g['disks']] == ['vda', 'sda'] and g['disks'][1]['readonly']
    assert [(i['type'], i['network'] or i['bridge'], i['mac']) for i in g['interfaces']] == [
        ('network', 'default', '52:54:00:00:00:01'), ('bridge', 'br0', '52:54:00:00:00:02')]
    assert g['hostdevs'] == ['pci 0000:01:00.0']
    assert g['tags'] == ['anti_affinity:db'] and g['cpu']['mode'] is None
    assert (g['arch'], g['machine'], g['domain_type']) == ('x86_64', 'pc-i440fx-7.2', 'qemu')


def test_normalize_refuses_what_makes_no_sense():
    with pytest.raises(KvmopsError, match='dest_uri'):
        spec(dest_uri=None)
    with pytest.raises(KvmopsError, match='source itself'):
        spec(dest_uri='qemu:///system')
    with pytest.raises(KvmopsError, match='only applies to storage: shared'):
        spec(storage='copy', unsafe=True)
    with pytest.raises(KvmopsError, match='bandwidth'):
        spec(bandwidth=0)
    assert spec(dest_uri=None, dest_candidates=['a', 'b', 'a'])['dests'] == ['a', 'b']


def test_flags_never_carry_unsafe_unless_asked():
    assert plan.flag_names(plan.flags(spec(), True)) == ['live', 'peer2peer', 'persist_dest', 'undefine_source']
    assert 'unsafe' in plan.flag_names(plan.flags(spec(unsafe=True), True))
    names = plan.flag_names(plan.flags(spec(storage='copy', auto_converge=True, compression=True, tls=True,
                                            timeout=60, timeout_action='postcopy'), True))
    assert set(['non_shared_disk', 'auto_converge', 'compressed', 'tls', 'postcopy']) <= set(names)
    assert 'postcopy' not in plan.flag_names(plan.flags(spec(timeout=60, timeout_action='pause'), True))
    offline = plan.flag_names(plan.flags(spec(storage='copy'), False))
    assert 'offline' in offline and 'live' not in offline and 'non_shared_disk' not in offline


def test_copy_migrates_only_the_writable_disks():
    s = spec(storage='copy', bandwidth=100)
    assert plan.migrate_params(s, guest(), True) == {'bandwidth': 100, 'migrate_disks': ['vda']}
    assert plan.migrate_params(spec(), guest(), True) == {}


def test_a_good_target_passes_every_check():
    assert plan.check_target(spec(), guest(), host('hv1'), host()) == ([], [])


@pytest.mark.parametrize('change, words', [
    ({'networks': {}}, 'has no libvirt network default'),
    ({'networks': {'default': False}}, 'is not active on hv2'),
    ({'bridges': {'eth0'}}, 'has no bridge br0'),
    ({'available_memory_bytes': 300 * MIB}, 'has 300 MiB of memory available'),
    ({'domain_types': ['kvm']}, 'cannot run qemu guests'),
    ({'cpu_compare': 'incompatible'}, 'not available on hv2'),
    ({'volumes': {'/vm-images/iso/install.iso': {}}}, 'is not in pool vm-images on hv2'),
    ({'guest_tags': [['web'], ['anti_affinity:db']]}, 'anti-affinity group db'),
])
def test_each_failed_check_gives_its_reason(change, words):
    found = reasons(spec(), guest(cpu="<cpu mode='custom'><model>qemu64</model></cpu>"), host(**change))
    assert len(found) == 1 and words in found[0], found


def test_host_devices_and_host_passthrough_between_unlike_hosts():
    g = guest(cpu="<cpu mode='host-passthrough'/>",
              devices="<hostdev mode='subsystem' type='usb'><source><vendor id='0x046d'/><product id='0xc52b'/></source></hostdev>")
    found = reasons(spec(), g, host(host_cpu={'vendor': 'AMD', 'model': 'EPYC', 'features': []}))
    assert any('host device passed through (usb 046d:c52b)' in r for r in found)
    assert any('host-passthrough' in r and 'identical hosts' in r for r in found)
    assert reasons(spec(), guest(cpu="<cpu mode='host-passthrough'/>"), host()) == []


def test_copy_storage_needs_a_pool_and_never_overwrites():
    s = spec(storage='copy')
    target = host(volumes={'/vm-images/iso/install.iso': {}})
    assert reasons(s, guest(), target) == []
    found = reasons(s, guest(), host())
    assert len(found) == 1 and 'never overwrites' in found[0]
    found = reasons(s, guest(), host(pools=[{'name': 'iso', 'path': '/vm-images/iso', 'active': True}],
                                     volumes={'/vm-images/iso/install.iso': {}}))
    assert len(found) == 1 and 'no storage pool over /vm-images' in found[0]
    # A missing CD-ROM image is not copied: it must be there already.
    found = reasons(s, guest(), host(volumes={}))
    assert len(found) == 1 and 'read-only disk sda' in found[0]


def test_shared_storage_without_a_pool_is_a_warning_not_a_refusal():
    found, warnings = plan.check_target(spec(), guest(), host('hv1'), host(pools=[], volumes={}))
    assert found == [] and len(warnings) == 2 and 'cannot check' in warnings[0]


def test_pins_and_the_choice_of_a_target():
    g = guest(tags='<k:tag>pin:hv3</k:tag>')
    assert any('pinned to hv3' in r for r in reasons(spec(), g, host('hv2')))
    big, small, busy = (host('hv2', available_memory_bytes=8192 * MIB), host('hv3', available_memory_bytes=2048 * MIB),
                        host('hv4', available_memory_bytes=8192 * MIB, running_guests=5))
    chosen, verdicts = plan.choose_target(spec(), guest(), host('hv1'), [small, busy, big])
    assert chosen['name'] == 'hv2' and set(verdicts) == {'hv2', 'hv3', 'hv4'}
    chosen, verdicts = plan.choose_target(spec(), g, host('hv1'), [small, busy, big])
    assert chosen['name'] == 'hv3'
    # A few MiB more memory do not outweigh the running-guest count.
    near = host('hv5', available_memory_bytes=8192 * MIB + 5 * MIB, running_guests=3)
    chosen, verdicts = plan.choose_target(spec(), guest(), host('hv1'), [near, big])
    assert chosen['name'] == 'hv2'
    chosen, verdicts = plan.choose_target(spec(), guest(tags='<k:tag>pin:hv1</k:tag>'), host('hv1'), [big])
    assert chosen is None and 'pinned to hv1' in plan.refusal_message('vm1', verdicts)


def test_job_stats_and_libvirt_words():
    assert plan.job_stats({'time_elapsed': 1840, 'downtime': 62, 'other': 1}) == {'total_ms': 1840, 'downtime_ms': 62}
    assert plan.is_unsafe_refusal(81, '') and plan.is_unsafe_refusal(1, 'Unsafe migration: Migration without shared storage is unsafe')
    assert plan.is_eof('internal error: End of file while reading data: Input/output error')
    assert 'unsafe: true' in plan.unsafe_hint('x')
    assert plan.host_of('qemu+ssh://root@hv2:2222/system') == 'hv2' and plan.host_of('qemu:///system') == 'localhost'


def test_the_package_imports_only_downwards():
    """_migrate may use _common, _libvirt and _host: never the guest core (it is being reshaped)."""
    import os
    import re
    here = os.path.dirname(plan.__file__)
    for name in os.listdir(here):
        if name.endswith('.py'):
            with open(os.path.join(here, name)) as f:
                for package in re.findall(r'plugins\.module_utils\.(_\w+)', f.read()):
                    assert package in ('_common', '_libvirt', '_host', '_migrate'), (name, package)


# -- tls: true -----------------------------------------------------------------------------------
def test_tls_dir_follows_qemu_conf():
    assert plan.tls_dir({}) == '/etc/pki/qemu'
    assert plan.tls_dir({'default_tls_x509_cert_dir': '/srv/pki'}) == '/srv/pki'
    assert plan.tls_dir({'default_tls_x509_cert_dir': '/srv/pki',
                         'migrate_tls_x509_cert_dir': '/srv/mig'}) == '/srv/mig'
    assert plan.tls_dir({'migrate_tls_x509_cert_dir': '  '}) == '/etc/pki/qemu'


def test_tls_refusal_names_the_missing_files_and_the_fix():
    missing = plan.tls_paths('/etc/pki/qemu', ('client-cert.pem', 'client-key.pem'))
    msg = plan.tls_refusal('vm1', 'hv1', '/etc/pki/qemu', missing)
    assert 'hv1 has no /etc/pki/qemu/client-cert.pem, /etc/pki/qemu/client-key.pem' in msg
    assert '/etc/pki/qemu/server-key.pem' in msg and 'libvirt_pki' in msg
    assert 'kvm_host_pki' in msg and 'nothing was changed' in msg


def test_tls_failure_hint_only_for_qemu_credentials_errors():
    hint = plan.tls_failure_hint('internal error: unable to execute QEMU command \'object-add\': '
                                 'Unable to access credentials /etc/pki/qemu/server-cert.pem: '
                                 'No such file or directory', 'hv2')
    assert 'hv2' in hint and 'libvirt_pki' in hint
    assert plan.tls_failure_hint('End of file while reading data', 'hv2') is None


def test_tls_flag_only_on_a_live_move():
    s = spec(tls=True)
    assert 'tls' in plan.flag_names(plan.flags(s, live=True))
    assert 'tls' not in plan.flag_names(plan.flags(s, live=False))
