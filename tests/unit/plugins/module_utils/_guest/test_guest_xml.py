"""Golden XML for every option family of virt_install_domain's builder (pure, no libvirt).

Regenerate after an intended change with
    KVMOPS_REGEN_GOLDEN=1 .venv/bin/pytest tests/unit/plugins/module_utils/test_domain_xml.py
and review the result with `git diff tests/golden/domains/`. Each golden file is also
validated against libvirt's own RelaxNG schema when the host has it (/usr/share/libvirt/schemas).
"""
import copy
import os

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as S
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import builder as X

etree = pytest.importorskip('lxml.etree')

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, '..', '..', '..', '..', 'golden', 'domains')
SCHEMA = '/usr/share/libvirt/schemas/domain.rng'
IMG = '/var/lib/libvirt/images'
BOOT = '/var/lib/libvirt/boot'
QEMU = {'arch': 'x86_64', 'domain_type': 'qemu', 'machine': None}
KVM = {'arch': 'x86_64', 'domain_type': 'kvm', 'machine': None}

# name -> (options, host, formats of existing images as the storage layer would detect them)
CASES = {
    # the guide's Linux guest: bridge, serial console only (virt-install --graphics none)
    'linux-text-console': (dict(name='vm1', memory=1024, vcpus=1, os_variant='centos7.0',
                                disks=[{'path': IMG + '/vm1.img', 'size': 10, 'format': 'raw'}],
                                networks=[{'bridge': 'br0'}], graphics={'type': 'none'}), KVM),
    # the tiny test guest: direct kernel boot, serial log file, no NIC
    'direct-kernel-serial-file': (dict(name='tiny', memory='256MiB', os_variant='linux',
                                       kernel=BOOT + '/vmlinuz', initrd=BOOT + '/initrd.img',
                                       cmdline='console=ttyS0', serial=IMG + '/tiny.log',
                                       networks=[], graphics={'type': 'none'}), QEMU),
    'vnc': (dict(name='vnc1', memory='2GiB', os_variant='linux',
                 graphics={'type': 'vnc', 'listen': '127.0.0.1', 'port': 5901,
                           'password': 'secret', 'keymap': 'de'},
                 disks=[{'path': IMG + '/vnc1.img', 'size': 5}]), KVM),
    'vnc-defaults': (dict(name='vnc2', disks=[]), QEMU),
    'spice': (dict(name='spice1', os_variant='linux', graphics={'type': 'spice'}), KVM),
    # the guide's Windows guest: cdrom + VNC, Hyper-V enlightenments under KVM
    'windows': (dict(name='windows1', memory=2048, cpu='host', vcpus=2, os_variant='windows',
                     disks=[{'path': IMG + '/windows1.img', 'size': 40},
                            {'path': BOOT + '/win2012.iso', 'device': 'cdrom'}],
                     networks=[{'bridge': 'br0'}], graphics={'type': 'vnc'}), KVM),
    'windows-tcg': (dict(name='windows2', os_variant='win2k12r2', disks=[], networks=[]), QEMU),
    'uefi': (dict(name='uefi1', firmware='uefi', machine='q35', os_variant='linux',
                  disks=[{'path': IMG + '/uefi1.img', 'size': 8}], graphics={'type': 'none'}),
             KVM),
    'bridge': (dict(name='br1', os_variant='linux', graphics={'type': 'none'},
                    networks=[{'bridge': 'br0', 'mac': '52:54:00:12:34:56'},
                              {'bridge': 'br1', 'model': 'e1000e'}]), KVM),
    'direct': (dict(name='macvtap1', os_variant='linux', graphics={'type': 'none'},
                    networks=[{'direct': 'eth0'}, {'direct': 'eth1', 'mode': 'vepa'}]), KVM),
    'qcow2-backing-store': (dict(name='clone1', os_variant='linux', cpu='host-passthrough',
                                 disks=[{'path': IMG + '/clone1.qcow2',
                                         'backing_store': IMG + '/base/debian12.qcow2'}],
                                 graphics={'type': 'none'}), KVM),
    'multiple-disks': (dict(name='multi1', os_variant='linux', graphics={'type': 'none'},
                            disks=[{'path': IMG + '/multi1-root.img', 'size': 20},
                                   {'path': IMG + '/multi1-data.qcow2', 'size': 100,
                                    'format': 'qcow2', 'cache': 'none'},
                                   {'path': IMG + '/multi1-scratch.img', 'size': 1, 'bus': 'scsi'},
                                   {'path': IMG + '/multi1-old.img', 'size': 1, 'bus': 'ide',
                                    'readonly': True},
                                   {'pool': 'default', 'volume': 'multi1-vol', 'size': 2},
                                   {'path': BOOT + '/tools.iso', 'device': 'cdrom'},
                                   {'device': 'cdrom'}]), KVM),
    'cpu-model-machine': (dict(name='model1', cpu='Skylake-Server', machine='pc',
                               graphics={'type': 'none'}, networks=[{'network': 'default'}]), KVM),
}


def render(name):
    params, host = CASES[name]
    spec = A.normalize(params)
    values = S.creation_values(spec)
    return X.build_domain_xml(values, host)


@pytest.mark.parametrize('name', sorted(CASES))
def test_golden(name):
    xml = render(name)
    path = os.path.join(GOLDEN, name + '.xml')
    if os.environ.get('KVMOPS_REGEN_GOLDEN') == '1':
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, 'w') as f:
            f.write(xml)
    assert os.path.exists(path), 'no golden file %s: run with KVMOPS_REGEN_GOLDEN=1' % path
    with open(path) as f:
        assert xml == f.read(), 'XML changed; regenerate with KVMOPS_REGEN_GOLDEN=1 and review'


@pytest.mark.skipif(not os.path.exists(SCHEMA), reason='libvirt schemas not installed')
@pytest.mark.parametrize('name', sorted(CASES))
def test_golden_matches_libvirt_schema(name):
    rng = etree.RelaxNG(etree.parse(SCHEMA))
    doc = etree.fromstring(render(name).encode())
    assert rng.validate(doc), rng.error_log


def test_every_golden_file_has_a_case():
    files = sorted(f[:-4] for f in os.listdir(GOLDEN) if f.endswith('.xml'))
    assert files == sorted(CASES)


def test_builder_is_pure_and_deterministic():
    # The same inputs twice: equal XML, and the inputs are not changed by the build (disk
    # targets are assigned on copies), so a second build cannot differ from the first.
    params, host = CASES['windows']
    values = S.creation_values(A.normalize(params))
    frozen, host_frozen = copy.deepcopy(values), copy.deepcopy(host)
    first = X.build_domain_xml(values, host)
    assert values == frozen and host == host_frozen
    assert 'target' not in values['disks'][0]
    assert X.build_domain_xml(values, host) == first == render('windows')


def test_xml_metacharacters_cannot_reach_the_xml():
    with pytest.raises(S.SpecError):
        A.normalize(dict(name='x', cmdline="console=ttyS0'/><evil/>"))


def test_password_is_escaped_by_lxml_not_rejected():
    spec = A.normalize(dict(name='p', graphics={'type': 'vnc', 'password': 'a"b<c&d'}))
    xml = X.build_domain_xml(S.creation_values(spec), QEMU)
    assert etree.fromstring(xml.encode()).find('devices/graphics').get('passwd') == 'a"b<c&d'


def test_target_names():
    assert [X.target_name('vd', i) for i in (0, 1, 25, 26, 27)] == \
        ['vda', 'vdb', 'vdz', 'vdaa', 'vdab']
    disks = X.assign_targets([{'bus': 'virtio'}, {'bus': 'sata'}, {'bus': 'virtio'}],
                             used=['vda'])
    assert [d['target'] for d in disks] == ['vdb', 'sda', 'vdc']


def test_windows_under_tcg_has_no_hyperv():
    tree = etree.fromstring(render('windows-tcg').encode())
    assert tree.find('features/hyperv') is None
    assert tree.find('clock').get('offset') == 'localtime'
    tree = etree.fromstring(render('windows').encode())
    assert tree.find('features/hyperv/relaxed') is not None
    assert tree.find("devices/input[@type='tablet']") is not None
    assert tree.find('devices/disk/target').get('bus') == 'sata'
    assert tree.find('devices/interface/model').get('type') == 'e1000e'


def test_graphics_none_has_no_graphics_or_video_but_a_serial_console():
    tree = etree.fromstring(render('linux-text-console').encode())
    assert tree.find('devices/graphics') is None
    assert tree.find('devices/video') is None
    assert tree.find('devices/serial').get('type') == 'pty'
    assert tree.find('devices/console/target').get('type') == 'serial'
