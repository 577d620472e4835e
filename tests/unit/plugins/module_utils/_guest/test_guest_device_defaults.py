"""The devices virt-install gives a new guest (device_defaults), beyond the golden files."""
import os

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import builder as X
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import osinfo as O
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as S

etree = pytest.importorskip('lxml.etree')
SCHEMA = '/usr/share/libvirt/schemas/domain.rng'
QEMU = {'arch': 'x86_64', 'domain_type': 'qemu', 'machine': None}
# What libosinfo answers for centos7.0 (osinfo-db 20221130), fixed here: the builder is pure.
CENTOS7 = dict(O.family_facts('centos7.0', 'linux'), source='libosinfo',
               id='http://centos.org/centos/7.0', video='vga')


def build(params, host=None, info=None):
    host = host or QEMU
    spec = A.normalize(params)
    if info is not None:
        O.apply(spec, info)
    return etree.fromstring(X.build_domain_xml(S.creation_values(spec), host).encode())


def test_libosinfo_metadata_and_schema():
    tree = build(dict(name='c7', os_variant='centos7.0', graphics={'type': 'vnc'},
                      disks=[{'path': '/i/c7.img', 'size': 10}]), info=CENTOS7)
    ns = '{http://libosinfo.org/xmlns/libvirt/domain/1.0}'
    assert tree.find('metadata/%slibosinfo/%sos' % (ns, ns)).get('id') == CENTOS7['id']
    assert tree.find('devices/video/model').get('type') == 'vga'
    assert tree.find("devices/channel/target[@name='org.qemu.guest_agent.0']") is not None
    if os.path.exists(SCHEMA):
        rng = etree.RelaxNG(etree.parse(SCHEMA))
        assert rng.validate(tree), rng.error_log


def test_families_write_no_metadata():
    tree = build(dict(name='l', os_variant='linux'))
    assert tree.find('metadata') is None


def test_ide_disk_keeps_pc_and_explicit_machine_wins():
    assert build(dict(name='i', os_variant='linux',
                      disks=[{'path': '/i/a.img', 'size': 1, 'bus': 'ide'}])
                 ).find('os/type').get('machine') is None
    assert build(dict(name='m', os_variant='linux', machine='pc')
                 ).find('os/type').get('machine') == 'pc'
    assert build(dict(name='q', os_variant='linux')).find('os/type').get('machine') == 'q35'
    assert build(dict(name='g', os_variant='generic')).find('os/type').get('machine') is None


def test_aarch64_gets_virt():
    tree = build(dict(name='a', os_variant='linux', arch='aarch64', graphics={'type': 'none'}),
                 host={'arch': 'aarch64', 'domain_type': 'qemu', 'machine': None})
    assert tree.find('os/type').get('machine') == 'virt'
    assert tree.find('pm') is None  # x86 only, like virt-install


def test_discard_only_on_sparse_disks():
    tree = build(dict(name='d', os_variant='linux', disks=[
        {'path': '/i/s.img', 'size': 1}, {'path': '/i/f.img', 'size': 1, 'sparse': False},
        {'path': '/i/x.iso', 'device': 'cdrom'}]))
    assert [d.find('driver').get('discard') for d in tree.findall('devices/disk')] == \
        ['unmap', None, None]


def test_no_agent_or_rng_for_windows_and_generic():
    for ov in ('windows', 'generic'):
        tree = build(dict(name='w', os_variant=ov))
        assert tree.find('devices/channel') is None and tree.find('devices/rng') is None


def test_uefi_video_is_bochs_and_spice_qxl():
    assert build(dict(name='u', os_variant='generic', firmware='uefi')
                 ).find('devices/video/model').get('type') == 'bochs'
    assert build(dict(name='s', os_variant='linux', graphics={'type': 'spice'})
                 ).find('devices/video/model').get('type') == 'qxl'
