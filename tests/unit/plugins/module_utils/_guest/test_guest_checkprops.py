"""Every option the builder writes into a new domain's XML is compared by drift (in the
spirit of virt-manager's tests/test_checkprops.py): for each option below, the XML built from
a base guest is compared with the base guest changed in that one option, and drift must see
it; the base guest against its own XML must not drift. A new option the builder writes gets
a line here, or drift never notices when a user changes it."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import builder as X
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import drift as D
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as S

HOST = {'arch': 'x86_64', 'domain_type': 'qemu', 'machine': None,
        'machine_aliases': {'pc': 'pc-i440fx-7.2', 'q35': 'pc-q35-7.2'}}

BASE = {
    'name': 'kvmops-checkprops', 'memory': 512, 'vcpus': 1, 'virt_type': 'qemu',
    'os_variant': 'generic',
    'disks': [{'path': '/var/lib/libvirt/images/a.qcow2', 'size': 1, 'bus': 'virtio',
               'format': 'qcow2'},
              {'path': '/var/lib/libvirt/boot/x.iso', 'device': 'cdrom'}],
    'networks': [{'network': 'default', 'model': 'virtio',
                  'mac': '52:54:00:00:00:01'}],
    'graphics': {'type': 'vnc', 'listen': '127.0.0.1', 'port': 5901, 'password': 'secret'},
    'kernel': '/var/lib/libvirt/boot/vmlinuz', 'initrd': '/var/lib/libvirt/boot/initrd.img',
    'cmdline': 'console=ttyS0',
}

# option -> a changed value (a function of the base options)
CHANGES = {
    'memory': lambda p: dict(p, memory=1024),
    'vcpus': lambda p: dict(p, vcpus=2),
    'disks[].path': lambda p: dict(p, disks=[dict(p['disks'][0], path='/var/lib/libvirt/images/b.qcow2'), p['disks'][1]]),
    'disks[].bus': lambda p: dict(p, disks=[dict(p['disks'][0], bus='sata'), p['disks'][1]]),
    'disks[].readonly': lambda p: dict(p, disks=[dict(p['disks'][0], readonly=True), p['disks'][1]]),
    'disks[] (one more)': lambda p: dict(p, disks=p['disks'] + [{'path': '/var/lib/libvirt/images/c.img', 'size': 1}]),
    'networks[].network': lambda p: dict(p, networks=[dict(p['networks'][0], network='other')]),
    'networks[].model': lambda p: dict(p, networks=[dict(p['networks'][0], model='e1000')]),
    'networks[].mac': lambda p: dict(p, networks=[dict(p['networks'][0], mac='52:54:00:00:00:02')]),
    'graphics.listen': lambda p: dict(p, graphics=dict(p['graphics'], listen='127.0.0.2')),
    'graphics.port': lambda p: dict(p, graphics=dict(p['graphics'], port=5902)),
    'graphics.password': lambda p: dict(p, graphics=dict(p['graphics'], password='other')),
    'graphics.type': lambda p: dict(p, graphics={'type': 'none'}),
    'kernel': lambda p: dict(p, kernel='/var/lib/libvirt/boot/vmlinuz2'),
    'initrd': lambda p: dict(p, initrd='/var/lib/libvirt/boot/initrd2.img'),
    'cmdline': lambda p: dict(p, cmdline='console=ttyS0 quiet'),
}


def xml_of(params):
    values = S.creation_values(A.normalize(params))
    return X.build_domain_xml(values, HOST)


def test_the_base_guest_does_not_drift_from_its_own_xml():
    assert not D.compare(A.normalize(BASE), xml_of(BASE), HOST).changed


@pytest.mark.parametrize('option', sorted(CHANGES))
def test_drift_sees_every_option_the_builder_writes(option):
    changed = CHANGES[option](BASE)
    assert xml_of(changed) != xml_of(BASE), 'the builder does not write %s' % option
    drift = D.compare(A.normalize(changed), xml_of(BASE), HOST)
    assert drift.changed, 'drift does not compare %s' % option
