"""Drift detection against libvirt-normalised XML: only what the options ask for (pure).

NORMALISED is what libvirt 9.0 on the test bed returned (virsh dumpxml --inactive) for a
domain this module defined; the field fixtures in tests/fixtures/domains (see its MANIFEST)
show shapes other tools and libvirt versions produce.
"""
import os

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import drift as D
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'fixtures', 'domains')
HOST = {'arch': 'x86_64', 'domain_type': 'qemu',
        'machine_aliases': {'pc': 'pc-i440fx-7.2', 'q35': 'pc-q35-7.2'}}

NORMALISED = """<domain type='qemu'>
  <name>kvmops-p1dev-a</name>
  <uuid>e6b609c9-521a-44e3-85c8-b40905e63423</uuid>
  <memory unit='KiB'>262144</memory>
  <currentMemory unit='KiB'>262144</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <kernel>/var/lib/libvirt/boot/vmlinuz</kernel>
    <initrd>/var/lib/libvirt/boot/initrd.img</initrd>
    <cmdline>console=ttyS0</cmdline>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>qemu64</model>
  </cpu>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/a.img'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <controller type='usb' index='0' model='piix3-uhci'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>
    </controller>
    <controller type='pci' index='0' model='pci-root'/>
    <interface type='network'>
      <mac address='52:54:00:ae:04:e2'/>
      <source network='default'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <serial type='file'>
      <source path='/var/lib/libvirt/images/serial.log'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
    </serial>
    <console type='file'>
      <source path='/var/lib/libvirt/images/serial.log'/>
      <target type='serial' port='0'/>
    </console>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='secret'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <audio id='1' type='none'/>
    <video>
      <model type='virtio' heads='1' primary='yes'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </video>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </memballoon>
  </devices>
</domain>
"""

SAME = dict(name='kvmops-p1dev-a', memory='256MiB', vcpus=1, os_variant='linux',
            machine='pc', virt_type='qemu', firmware='bios',
            kernel='/var/lib/libvirt/boot/vmlinuz', initrd='/var/lib/libvirt/boot/initrd.img',
            cmdline='console=ttyS0', serial='/var/lib/libvirt/images/serial.log',
            disks=[{'path': '/var/lib/libvirt/images/a.img', 'size': 100, 'format': 'raw',
                    'bus': 'virtio'}],
            networks=[{'network': 'default', 'model': 'virtio'}],
            graphics={'type': 'vnc', 'listen': '127.0.0.1', 'password': 'secret'})


def drift(xml=NORMALISED, **changes):
    params = dict(SAME)
    params.update(changes)
    return D.compare(A.normalize(params), xml, HOST)


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def test_same_options_no_drift_and_nothing_generated_is_touched():
    d = drift()
    assert d.differences == []
    merged = d.merged_xml()
    for generated in ("52:54:00:ae:04:e2", 'e6b609c9-521a-44e3-85c8-b40905e63423',
                      "slot='0x04'", 'piix3-uhci'):
        assert generated.replace("'", '"') in merged or generated in merged


def test_with_differences_nothing_generated_is_touched():
    d = drift(memory='512MiB', vcpus=2, graphics={'type': 'vnc', 'keymap': 'de'})
    assert [x['item'] for x in d.differences] == ['memory', 'vcpus', 'graphics.keymap']
    merged = d.merged_xml()
    for generated in ("52:54:00:ae:04:e2", 'e6b609c9-521a-44e3-85c8-b40905e63423',
                      "slot='0x04'", 'piix3-uhci'):
        assert generated.replace("'", '"') in merged or generated in merged


def test_only_given_options_are_compared():
    spec = A.normalize({'name': 'kvmops-p1dev-a'})
    assert D.compare(spec, NORMALISED, HOST).differences == []


def test_memory_change_detected_applied_and_shown():
    d = drift(memory='512MiB')
    assert d.differences == [{'item': 'memory', 'before': '256 MiB', 'after': '512 MiB'}]
    assert d.merged.findtext('memory') == str(512 * 1024)
    assert d.merged.findtext('currentMemory') == str(512 * 1024)
    diff = d.diff()
    assert '262144' in diff['before'] and '524288' in diff['after']
    assert '<devices>' not in diff['before']  # only the affected elements
    assert '<vcpu' not in diff['before']


def test_vcpus_change():
    d = drift(vcpus=4)
    assert [x['item'] for x in d.differences] == ['vcpus']
    assert d.merged.findtext('vcpu') == '4'
    assert '<vcpu placement="static">4</vcpu>' in d.diff()['after']


def test_machine_alias_is_not_drift_but_another_machine_is():
    assert drift(machine='pc').differences == []
    assert drift(machine='pc-i440fx-7.2').differences == []
    assert [x['item'] for x in drift(machine='q35').differences] == ['machine']


def test_arch_cannot_change():
    with pytest.raises(D.DriftError, match='architecture'):
        drift(arch='aarch64')


def test_password_change_is_detected_but_never_shown():
    d = drift(graphics={'type': 'vnc', 'password': 'other'})
    assert [x['item'] for x in d.differences] == ['graphics.password']
    text = repr(d.differences) + repr(d.diff())
    assert 'secret' not in text and 'other' not in text
    assert d.merged.find('devices/graphics').get('passwd') == 'other'


def test_graphics_listen_port_and_type():
    d = drift(graphics={'type': 'vnc', 'listen': '127.0.0.2', 'port': 5905})
    assert sorted(x['item'] for x in d.differences) == ['graphics.listen', 'graphics.port']
    g = d.merged.find('devices/graphics')
    assert g.get('listen') == '127.0.0.2' and g.find('listen').get('address') == '127.0.0.2'
    assert g.get('autoport') == 'no' and g.get('port') == '5905'
    d = drift(graphics={'type': 'none'})
    assert d.merged.find('devices/graphics') is None
    d = drift(graphics={'type': 'spice'})
    assert d.merged.find('devices/graphics').get('type') == 'spice'


def test_mac_and_addresses_survive_a_model_change():
    d = drift(networks=[{'network': 'default', 'model': 'e1000e'}])
    iface = d.merged.find('devices/interface')
    assert iface.find('mac').get('address') == '52:54:00:ae:04:e2'
    assert iface.find('model').get('type') == 'e1000e'


def test_network_source_change_and_removal_and_addition():
    d = drift(networks=[{'bridge': 'br0'}, {'network': 'default'}])
    ifaces = d.merged.findall('devices/interface')
    assert [i.get('type') for i in ifaces] == ['bridge', 'network']
    assert ifaces[0].find('mac').get('address') == '52:54:00:ae:04:e2'  # kept
    assert ifaces[1].find('mac') is None  # libvirt will generate one
    d = drift(networks=[])
    assert d.merged.find('devices/interface') is None
    assert [x['item'] for x in d.differences] == ['networks']


def test_new_disk_gets_a_free_target_and_old_disk_keeps_its_address():
    disks = list(SAME['disks']) + [{'path': '/var/lib/libvirt/images/b.img', 'size': 1}]
    d = drift(disks=disks)
    els = d.merged.findall('devices/disk')
    assert [e.find('target').get('dev') for e in els] == ['vda', 'vdb']
    assert els[0].find('address') is not None
    assert [x['item'] for x in d.differences] == ['disks']


def test_disk_bus_change_reassigns_target_and_drops_address():
    d = drift(disks=[{'path': '/var/lib/libvirt/images/a.img', 'bus': 'sata'}])
    el = d.merged.find('devices/disk')
    assert el.find('target').get('dev') == 'sda' and el.find('address') is None


def test_disk_removed_from_list_leaves_the_definition():
    d = drift(disks=[])
    assert d.merged.find('devices/disk') is None


def test_kernel_group():
    d = drift(cmdline='console=ttyS0 kvmops.dhcp=1')
    assert [x['item'] for x in d.differences] == ['cmdline']
    d = drift(initrd=None, cmdline=None)
    assert d.merged.find('os/initrd') is None and d.merged.find('os/cmdline') is None


def test_serial_change_to_pty():
    d = drift(serial='pty')
    assert d.merged.find('devices/serial').get('type') == 'pty'
    assert d.merged.find('devices/console').get('type') == 'pty'
    assert d.merged.find('devices/serial/target').get('type') == 'isa-serial'


def test_cpu_requested():
    assert [x['item'] for x in drift(cpu='host-model').differences] == ['cpu']
    assert drift(cpu='qemu64').differences == []


def test_field_bios_with_pflash_loader_counts_as_uefi():
    xml = fixture('lv-bios-nvram-pflash.xml')
    spec = A.normalize({'name': 'test-bios', 'firmware': 'uefi', 'memory': 1024, 'vcpus': 1,
                        'disks': [{'path': '/dev/HostVG/QEMUGuest1'}]})
    assert D.compare(spec, xml, HOST).differences == []
    d = D.compare(A.normalize({'name': 'test-bios', 'firmware': 'bios'}), xml, HOST)
    assert d.merged.find('os/loader') is None and d.merged.find('os/nvram') is None


def test_field_uefi_firmware_efi_and_memory_without_unit():
    xml = fixture('vm-uefi-secure-boot-firmware-efi.xml')
    spec = A.normalize({'name': 'vm1', 'firmware': 'uefi', 'memory': 64, 'vcpus': 1,
                        'cpu': 'host-passthrough',
                        'networks': [{'bridge': 'testsuitebr0', 'mac': '00:11:22:33:44:55',
                                      'model': 'e1000'}]})
    assert D.compare(spec, xml, HOST).differences == []


def test_field_vnc_listen_attribute_and_element():
    xml = fixture('lv-vnc-tls-listen-address.xml')
    spec = A.normalize({'name': 'QEMUGuest1', 'graphics': {'type': 'vnc', 'listen': '127.0.0.1',
                                                           'port': 5903}})
    assert D.compare(spec, xml, {'arch': 'i686', 'domain_type': 'qemu'}).differences == []


def test_field_hyperv_domain_untouched_when_unmanaged():
    xml = fixture('vm-hyperv-tlbflush.xml')
    d = D.compare(A.normalize({'name': 'fedora', 'os_variant': 'windows'}), xml, HOST)
    assert d.differences == []
    assert d.merged.find('features/hyperv') is not None


def test_empty_password_removes_it_and_then_is_stable():
    d = drift(graphics={'type': 'vnc', 'password': ''})
    assert [x['item'] for x in d.differences] == ['graphics.password']
    assert d.merged.find('devices/graphics').get('passwd') is None
    again = D.compare(A.normalize(dict(SAME, graphics={'type': 'vnc', 'password': ''})),
                      d.merged_xml(), HOST)
    assert again.differences == []


def test_graphics_keymap_drift_is_applied_and_then_stable():
    d = drift(graphics={'type': 'vnc', 'keymap': 'de'})
    assert d.differences == [{'item': 'graphics.keymap', 'before': None, 'after': 'de'}]
    assert d.merged.find('devices/graphics').get('keymap') == 'de'
    again = D.compare(A.normalize(dict(SAME, graphics={'type': 'vnc', 'keymap': 'de'})),
                      d.merged_xml(), HOST)
    assert again.differences == []
    # no keymap given: whatever the guest has stays
    assert D.compare(A.normalize(dict(SAME, graphics={'type': 'vnc'})), d.merged_xml(),
                     HOST).differences == []


# ---------------------------------------------------------------- pending restart (issue 27)
def _dom(memory_kib, vcpus, cpu=''):
    return ("<domain type='qemu'><name>x</name><memory unit='KiB'>%d</memory>"
            "<currentMemory unit='KiB'>%d</currentMemory><vcpu placement='static'>%d</vcpu>"
            "%s<os><type>hvm</type></os></domain>" % (memory_kib, memory_kib, vcpus, cpu))


def test_pending_restart_names_what_the_running_guest_still_runs():
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import drift
    assert drift.pending_restart(_dom(262144, 1), _dom(262144, 1)) == []
    pending = drift.pending_restart(_dom(393216, 2), _dom(262144, 1))
    assert pending == [{'item': 'memory', 'running': '256 MiB', 'defined': '384 MiB'},
                       {'item': 'vcpus', 'running': 1, 'defined': 2}]


def test_pending_restart_ignores_a_cpu_that_only_the_live_xml_shows():
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import drift
    live = _dom(262144, 1, "<cpu mode='custom'><model>qemu64</model></cpu>")
    assert drift.pending_restart(_dom(262144, 1), live) == []
    defined = _dom(262144, 1, "<cpu mode='custom'><model>Skylake-Server</model></cpu>")
    assert [p['item'] for p in drift.pending_restart(defined, live)] == ['cpu']
