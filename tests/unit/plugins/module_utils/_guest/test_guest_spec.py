"""virt_install_domain option validation and normalisation (pure)."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as S


def norm(**kw):
    kw.setdefault('name', 'vm1')
    return A.normalize(kw)


@pytest.mark.parametrize('value,mib', [
    (2048, 2048), ('2048', 2048), ('2GiB', 2048), ('2G', 2048), ('2 gb', 2048),
    ('512MiB', 512), ('1.5GiB', 1536), ('1048576KiB', 1024), ('1TiB', 1024 * 1024),
])
def test_memory_units(value, mib):
    assert norm(memory=value)['memory_mib'] == mib


@pytest.mark.parametrize('value', [-1, 0, '-2GiB', '0', 'lots', '2 parsecs', True, '1.3MiB'])
def test_bad_memory_fails(value):
    with pytest.raises(S.SpecError) as exc:
        norm(memory=value)
    assert 'memory' in str(exc.value)


@pytest.mark.parametrize('name', ['', 'a/b', 'has space', '-lead', 'x<y', "o'neil", 'a&b',
                                  'tab\tname', 'x' * 201])
def test_names_libvirt_rejects(name):
    with pytest.raises(S.SpecError):
        norm(name=name)


def test_unset_options_stay_unmanaged():
    spec = norm()
    for key in ('memory_mib', 'vcpus', 'cpu', 'firmware', 'graphics', 'serial', 'disks',
                'networks', 'autostart', 'kernel', 'machine'):
        assert spec[key] is None, key
    full = S.creation_values(spec)
    assert full['memory_mib'] == 1024 and full['vcpus'] == 1 and full['firmware'] == 'bios'
    assert full['graphics']['type'] == 'vnc' and full['serial']['type'] == 'pty'
    assert full['networks'][0]['source'] == 'default'  # virt-install's default NIC


@pytest.mark.parametrize('os_variant,family', [
    (None, 'generic'), ('generic', 'generic'), ('linux', 'linux'), ('centos7.0', 'linux'),
    ('rhel9.4', 'linux'), ('debian12', 'linux'), ('ubuntu24.04', 'linux'),
    ('windows', 'windows'), ('win2k12r2', 'windows'), ('win2012', 'windows'),
])
def test_os_variant_families(os_variant, family):
    assert norm(os_variant=os_variant)['os_family'] == family


def test_unknown_os_variant():
    with pytest.raises(S.SpecError, match='os_variant'):
        norm(os_variant='beos5')


@pytest.mark.parametrize('disk,match', [
    ({'path': 'relative.img', 'size': 1}, 'relative path'),
    ({'path': '/x/y.img', 'size': -1}, 'positive'),
    ({'path': '/x/y.img', 'bus': 'floppy'}, 'bus'),
    ({'path': '/x/y.img', 'format': 'vmdk'}, 'format'),
    ({'path': '/x/y.img', 'pool': 'default', 'volume': 'v'}, 'either path or pool'),
    ({'size': 1}, 'needs a path'),
    ({'path': '/x/<y>.img'}, 'metacharacters'),
    ({'path': '/x/y.img', 'backing_store': '/b.img', 'format': 'raw'}, 'qcow2'),
    ({'path': '/x/y.iso', 'device': 'cdrom', 'size': 1}, 'cdrom'),
    ({'path': '/x/y.img', 'colour': 'blue'}, 'Unsupported parameters: disks.colour'),
    ({'pool': 'default', 'volume': 'a/b', 'size': 1}, 'must be a name'),
])
def test_bad_disks(disk, match):
    with pytest.raises(S.SpecError, match=match):
        norm(disks=[disk])


def test_two_disks_on_the_same_path():
    with pytest.raises(S.SpecError, match='both use /x/y.img'):
        norm(disks=[{'path': '/x/y.img', 'size': 1}, {'path': '/x//y.img'}])


def test_disk_normalisation_and_os_defaults():
    spec = norm(os_variant='linux', disks=[
        {'path': '/x/../y/a.img', 'size': 0.5},
        {'path': '/y/b.qcow2', 'backing_store': '/base.qcow2'},
        {'path': '/y/c.iso', 'device': 'cdrom'}])
    a, b, c = spec['disks'][0], spec['disks'][1], spec['disks'][2]
    assert a['path'] == '/y/a.img' and a['size'] == 512 * 1024 * 1024 and a['format'] is None
    assert a['bus'] is None and a['bus_default'] == 'virtio' and a['sparse'] is True
    assert b['format'] == 'qcow2'
    assert c['readonly'] is True and c['bus_default'] == 'sata'
    assert norm(os_variant='windows', disks=[{'path': '/a'}])['disks'][0]['bus_default'] == 'sata'


@pytest.mark.parametrize('nic,match', [
    ({'network': 'default', 'bridge': 'br0'}, 'exactly one'),
    ({}, 'exactly one'),
    ({'bridge': 'br 0'}, 'interface name'),
    ({'network': 'default', 'mac': '52:54:00:12:34'}, 'MAC address'),
    ({'network': 'default', 'mac': '01:00:5e:00:00:01'}, 'multicast'),
    ({'bridge': 'br0', 'mode': 'vepa'}, 'direct'),
    ({'network': 'default', 'model': 'virtio<x>'}, 'metacharacters'),
])
def test_bad_networks(nic, match):
    with pytest.raises(S.SpecError, match=match):
        norm(networks=[nic])


def test_mac_lowercased_and_duplicates_refused():
    spec = norm(networks=[{'network': 'default', 'mac': '52:54:00:AA:BB:CC'}])
    assert spec['networks'][0]['mac'] == '52:54:00:aa:bb:cc'
    with pytest.raises(S.SpecError, match='same mac'):
        norm(networks=[{'network': 'default', 'mac': '52:54:00:AA:BB:CC'},
                       {'bridge': 'br0', 'mac': '52:54:00:aa:bb:cc'}])


@pytest.mark.parametrize('graphics,match', [
    ({'type': 'rdp'}, 'must be one of: none, vnc, spice, got: rdp found in graphics'),
    ({'type': 'vnc', 'listen': 'example.org'}, 'IP address'),
    ({'type': 'vnc', 'port': 80}, 'between 5900'),
    ({'type': 'none', 'password': 'x'}, 'none takes'),
    ({'type': 'vnc', 'keymap': 'klingon!'}, 'keymap'),
])
def test_bad_graphics(graphics, match):
    with pytest.raises(S.SpecError, match=match):
        norm(graphics=graphics)


def test_graphics_port_minus_one_is_explicit_autoport():
    assert norm(graphics={'type': 'vnc', 'port': -1})['graphics']['port'] == 'auto'
    assert norm(graphics={'type': 'vnc'})['graphics']['port'] is None


def test_serial():
    assert norm(serial='pty')['serial'] == {'type': 'pty', 'path': None}
    assert norm(serial='/var/log/x.log')['serial'] == {'type': 'file', 'path': '/var/log/x.log'}
    with pytest.raises(S.SpecError, match='relative'):
        norm(serial='console.log')


def test_cpu():
    assert norm(cpu='host')['cpu'] == 'host-model'
    assert norm(cpu='Skylake-Server')['cpu'] == 'Skylake-Server'
    with pytest.raises(S.SpecError):
        norm(cpu='host passthrough')


def test_kernel_options():
    with pytest.raises(S.SpecError, match='need kernel'):
        norm(cmdline='console=ttyS0')
    with pytest.raises(S.SpecError, match='relative'):
        norm(kernel='vmlinuz')


@pytest.mark.parametrize('vcpus', [0, -2, 5000, 'many'])
def test_bad_vcpus(vcpus):
    with pytest.raises(S.SpecError, match='vcpus'):
        norm(vcpus=vcpus)


def test_vnc_password_longer_than_8_bytes_fails_early():
    with pytest.raises(S.SpecError, match='only 8'):
        norm(graphics={'type': 'vnc', 'password': '123456789'})
    assert norm(graphics={'type': 'vnc', 'password': '12345678'})['graphics']['password']
    assert norm(graphics={'type': 'spice', 'password': 'a-long-spice-password'})
