"""os_variant facts: the families (pure) and libosinfo (read through the system Python's gi,
as the module does on the target; the venv that runs pytest has no gi)."""
import json
import os
import subprocess

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import osinfo as O
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as S

from support import paths

SYSTEM_PYTHON = '/usr/bin/python3'


@pytest.mark.parametrize('os_variant,family', [
    ('freebsd13.0', 'generic'), ('debian12', 'linux'), ('openbsd7.2', 'generic'),
    ('centos7.0', 'linux'), ('win2k12r2', 'windows'), ('solaris11', 'generic')])
def test_spec_accepts_ids_virt_install_accepts(os_variant, family):
    assert S.os_family(os_variant) == family


def test_spec_still_rejects_nonsense():
    with pytest.raises(S.SpecError, match='osinfo-query os'):
        S.os_family('banana')


@pytest.mark.parametrize('distro,version,arg', [
    ('centos', (7, 0), 'inst.repo'), ('rhel', (6, 10), 'method'), ('rhel', (9, 4), 'inst.repo'),
    ('fedora', (38,), 'inst.repo'), ('fedora', (16,), 'method'), ('opensuse', (15, 4), 'install'),
    ('sles', (12, 5), 'install'), ('debian', (12,), None), ('ubuntu', (22, 4), None),
    ('centos-stream', (9,), 'inst.repo'), ('rocky', (9,), 'inst.repo')])
def test_kernel_url_arg_fallback(distro, version, arg):
    assert O.kernel_url_arg_for(distro, version) == arg


def test_family_facts():
    linux = O.family_facts('debian12', 'linux')
    assert linux['source'] == 'families' and linux['distro'] == 'debian'
    assert (linux['disk_bus'], linux['nic_model'], linux['q35']) == ('virtio', 'virtio', True)
    assert linux['virtio_rng'] and linux['guest_agent'] and linux['cloud_user'] == 'debian'
    win = O.family_facts('windows', 'windows')
    assert (win['disk_bus'], win['nic_model'], win['q35']) == ('sata', 'e1000e', True)
    assert not win['guest_agent'] and win['clock'] == 'localtime'
    generic = O.family_facts('generic', 'generic')
    assert (generic['disk_bus'], generic['nic_model'], generic['q35']) == ('sata', 'e1000', False)
    bsd = O.family_facts('freebsd13.0', 'generic')
    assert (bsd['disk_bus'], bsd['nic_model']) == ('virtio', 'virtio')
    assert not O.family_facts('rhel6.10', 'linux')['q35']  # virtio 0.9 only
    assert O.family_facts('centos7.0', 'linux')['kernel_url_arg'] == 'inst.repo'


def test_resolve_without_libosinfo_says_why(monkeypatch):
    monkeypatch.setattr(O, '_DB', {'db': None, 'error': 'ImportError: No module named gi'})
    info = O.resolve('centos7.0', 'linux')
    assert info['source'] == 'families' and 'not available' in info['reason']
    assert 'ImportError' in info['reason']
    assert O.resolve('linux', 'linux')['reason'] == 'os_variant=linux is a family name'


def test_apply_sets_defaults_but_never_an_explicit_choice():
    spec = A.normalize(dict(name='x', os_variant='freebsd13.0',
                            disks=[{'path': '/i/a.img', 'size': 1},
                                   {'path': '/i/b.img', 'size': 1, 'bus': 'sata'},
                                   {'path': '/i/c.iso', 'device': 'cdrom'}],
                            networks=[{'network': 'default'}, {'bridge': 'br0', 'model': 'e1000'}]))
    O.apply(spec, O.family_facts('freebsd13.0', 'generic'))
    assert [d['bus'] or d['bus_default'] for d in spec['disks']] == ['virtio', 'sata', 'sata']
    assert [n['model'] or n['model_default'] for n in spec['networks']] == ['virtio', 'e1000']


LIBOSINFO_SCRIPT = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import osinfo as O
out = {}
for sid, fam in (('centos7.0', 'linux'), ('rhel6.10', 'linux'), ('win2k12r2', 'windows'),
                 ('freebsd13.0', 'generic'), ('opensuse15.4', 'linux'), ('debian12', 'linux'),
                 ('rhl9', 'generic')):
    out[sid] = O.summary(O.resolve(sid, fam))
print(json.dumps(out))
'''


def _system_python_has_libosinfo():
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    rc = subprocess.run([SYSTEM_PYTHON, '-c', "import gi; gi.require_version('Libosinfo', "
                         "'1.0'); from gi.repository import Libosinfo"],
                        capture_output=True, timeout=60, check=False).returncode
    return rc == 0


@pytest.mark.skipif(not _system_python_has_libosinfo(),
                    reason='libosinfo not importable in /usr/bin/python3 (testbed/setup.sh '
                           'installs osinfo-db, python3-gi, gir1.2-libosinfo-1.0)')
def test_libosinfo_through_the_system_python():
    out = subprocess.run([SYSTEM_PYTHON, '-c', LIBOSINFO_SCRIPT, paths.COLLECTIONS_DIR],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    c7 = r['centos7.0']
    assert c7['source'] == 'libosinfo' and c7['id'] == 'http://centos.org/centos/7.0'
    assert (c7['disk_bus'], c7['nic_model'], c7['q35']) == ('virtio', 'virtio', True)
    assert c7['kernel_url_arg'] == 'inst.repo' and c7['guest_agent'] and c7['virtio_rng']
    assert c7['minimum_memory_mib'] == 1024 and c7['cloud_user'] == 'centos'
    # virtio 0.9 only: pc, method= (anaconda before dracut)
    assert r['rhel6.10']['q35'] is False and r['rhel6.10']['kernel_url_arg'] == 'method'
    w = r['win2k12r2']
    assert (w['disk_bus'], w['nic_model'], w['q35'], w['guest_agent']) == \
        ('sata', 'e1000e', True, False)
    bsd = r['freebsd13.0']
    assert bsd['source'] == 'libosinfo' and bsd['disk_bus'] == 'virtio' and bsd['q35'] is False
    assert r['opensuse15.4']['kernel_url_arg'] == 'install'
    # osinfo-db 2022 does not know debian12: the families decide, and say so.
    assert r['debian12']['source'] == 'families' and 'does not know' in r['debian12']['reason']
    # an id only libosinfo knows (Red Hat Linux 9)
    assert r['rhl9']['source'] == 'libosinfo'
