"""The one disk-target allocator and CD-ROM bus rule (builder, drift and install phase)."""
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import disk_targets as T
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.xml import parse


def test_names_follow_libvirt_past_z():
    assert [T.target_name('vd', i) for i in (0, 1, 25, 26, 27, 701, 702)] == [
        'vda', 'vdb', 'vdz', 'vdaa', 'vdab', 'vdzz', 'vdaaa']


def test_free_target_skips_used_names_per_bus_prefix():
    assert T.free_target('sata', {'sda', 'sdb'}) == 'sdc'
    assert T.free_target('scsi', {'sda'}) == 'sdb'  # sata, scsi and usb share sdX
    assert T.free_target('ide', set()) == 'hda'
    used = set(T.target_name('sd', i) for i in range(26))
    assert T.free_target('sata', used) == 'sdaa'  # no artificial limit at sdz


def test_assign_keeps_given_targets_and_fills_the_rest():
    disks = T.assign_targets([{'bus': 'virtio'}, {'bus': 'virtio', 'target': 'vda'},
                              {'bus_default': 'sata'}], used=('sda',))
    assert [d['target'] for d in disks] == ['vdb', 'vda', 'sdb']


def test_used_targets_of_a_devices_element():
    devices = parse("<devices><disk><target dev='vda'/></disk><disk><target/></disk>"
                    "<disk><target dev='sdb'/></disk></devices>")
    assert T.used_targets(devices) == {'vda', 'sdb'}


def test_one_cdrom_bus_for_builder_and_install_phase():
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A
    spec = A.normalize({'name': 'a', 'disks': [{'device': 'cdrom', 'path': '/i.iso'}],
                        'os_variant': 'windows'})
    assert spec['disks'][0]['bus_default'] == T.CDROM_BUS == 'sata'
