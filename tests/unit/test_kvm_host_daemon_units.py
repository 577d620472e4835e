"""kvm_host's libvirt unit and package names against what the distributions really ship.

No RHEL-family host or RPM repository is reachable here, so the RHEL/Fedora names are checked
as data: the units below are those of the `%files` sections of libvirt's RPM spec (upstream
libvirt.spec.in, which Fedora and CentOS Stream build from; read for issue 32), the packages
those of the RHEL 9/10 and Fedora repositories. Debian's names are proven for real by
tests/trixie (Debian 13) and the bare-host test (Debian 12), whose apt installs them.
"""
import os

import pytest
import yaml
from jinja2 import Environment

from support import paths

ROLE = os.path.join(paths.REPO, 'roles', 'kvm_host')

# libvirt.spec: package -> systemd units it installs (%{_unitdir}/...)
SPEC_UNITS = {
    'libvirt-daemon': ['libvirtd.service', 'libvirtd.socket', 'libvirtd-ro.socket',
                       'libvirtd-admin.socket', 'libvirtd-tcp.socket', 'libvirtd-tls.socket'],
    'libvirt-daemon-log': ['virtlogd.service', 'virtlogd.socket', 'virtlogd-admin.socket'],
    'libvirt-daemon-proxy': ['virtproxyd.service', 'virtproxyd.socket', 'virtproxyd-ro.socket',
                             'virtproxyd-admin.socket', 'virtproxyd-tcp.socket',
                             'virtproxyd-tls.socket'],
}
for _drv, _pkg in (('qemu', 'qemu'), ('network', 'network'), ('storage', 'storage-core'),
                   ('nodedev', 'nodedev'), ('nwfilter', 'nwfilter'), ('secret', 'secret'),
                   ('interface', 'interface')):
    SPEC_UNITS['libvirt-daemon-driver-' + _pkg] = [
        'virt%sd%s' % (_drv, suffix) for suffix in ('.service', '.socket', '-ro.socket', '-admin.socket')]
ALL_SPEC_UNITS = {u for units in SPEC_UNITS.values() for u in units}
MODULAR_UNITS = ALL_SPEC_UNITS - set(SPEC_UNITS['libvirt-daemon'])

# RHEL 9/10 AppStream and Fedora: the meta package `libvirt` pulls in every daemon driver and the
# default network; qemu-kvm and qemu-img are QEMU's; virt-install, python3-libvirt, python3-lxml.
RPM_PACKAGES = {'libvirt', 'qemu-kvm', 'qemu-img', 'virt-install', 'python3-libvirt',
                'python3-lxml', 'osinfo-db', 'libosinfo', 'python3-gobject-base', 'virt-manager',
                'xorg-x11-xauth', 'dejavu-lgc-sans-fonts', 'iptables-services'}


def load(name):
    with open(os.path.join(ROLE, 'vars', name)) as f:
        return yaml.safe_load(f)


def render(value, context):
    """The role's Jinja expressions with Ansible's product filter (itertools.product)."""
    import itertools
    env = Environment()
    env.filters['product'] = lambda a, b: list(itertools.product(a, b))
    for _round in range(5):
        if isinstance(value, str) and '{{' in value:
            value = env.from_string(value).render(**context)
            value = yaml.safe_load(value) if value.startswith('[') else value
    return value


@pytest.fixture(scope='module')
def units():
    data = load('daemon_units.yml')
    ctx = dict(data)
    ctx['kvm_host_split_daemons'] = render(data['kvm_host_split_daemons'], ctx)
    ctx['kvm_host_split_sockets'] = render(data['kvm_host_split_sockets'], ctx)
    other = data['kvm_host_daemon_units_other']
    other['monolithic'] = render(other['monolithic'], ctx)
    return ctx['kvm_host_split_daemons'], ctx['kvm_host_split_sockets'], other


def test_split_services_are_units_the_spec_ships():
    services = load('main.yml')['kvm_host_daemon_services']
    for layout in ('monolithic', 'split'):
        for svc in services[layout]:
            assert svc + '.service' in ALL_SPEC_UNITS, (layout, svc)
    assert load('main.yml')['kvm_host_qemu_daemon'] == {'monolithic': 'libvirtd', 'split': 'virtqemud'}
    # the split layout runs no monolithic unit
    assert not {s + '.service' for s in services['split']} & set(SPEC_UNITS['libvirt-daemon'])


def test_split_sockets_and_conflicts_are_units_the_spec_ships(units):
    daemons, sockets, other = units
    assert 'virtqemud' in daemons and 'virtnetworkd' in daemons and 'virtproxyd' in daemons
    assert set(sockets) <= MODULAR_UNITS, set(sockets) - MODULAR_UNITS
    assert {'virtqemud.socket', 'virtqemud-ro.socket', 'virtqemud-admin.socket'} <= set(sockets)
    # every libvirtd unit is stopped on a split host, none of the modular ones
    assert set(other['split']) == set(SPEC_UNITS['libvirt-daemon'])
    # every modular unit but virtlogd's is stopped on a monolithic host (virtlogd serves both)
    assert set(other['monolithic']) <= MODULAR_UNITS
    assert not any(u.startswith('virtlogd') for u in other['monolithic'] + other['split'])
    assert MODULAR_UNITS - set(other['monolithic']) == set(SPEC_UNITS['libvirt-daemon-log']) | {
        'virtproxyd-tcp.socket', 'virtproxyd-tls.socket'}


@pytest.mark.parametrize('family', ['RedHat', 'Fedora'])
def test_rpm_package_names_are_the_repositories(family):
    data = load(family + '.yml')
    names = set()
    for key in ('kvm_host_os_packages', 'kvm_host_os_packages_sysv', 'kvm_host_os_packages_libosinfo',
                'kvm_host_os_packages_x11'):
        names |= set(data[key])
    assert names <= RPM_PACKAGES, names - RPM_PACKAGES
    assert load('main.yml')['kvm_host_iptables_persist']['RedHat']['package'] in RPM_PACKAGES


def test_the_layout_task_never_starts_both():
    with open(os.path.join(ROLE, 'tasks', 'daemon_layout.yml')) as f:
        tasks = yaml.safe_load(f)
    stop = [t for t in tasks if 'ansible.builtin.systemd_service' in t
            and t['ansible.builtin.systemd_service'].get('state') == 'stopped']
    start = [t for t in tasks if 'ansible.builtin.systemd_service' in t
             and t['ansible.builtin.systemd_service'].get('state') == 'started']
    assert len(stop) == 1 and len(start) == 1
    assert tasks.index(stop[0]) < tasks.index(start[0])     # the other layout stops first
    assert stop[0]['ansible.builtin.systemd_service']['enabled'] is False
