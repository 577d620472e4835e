"""cloud_init with clone_from, and clone_from.seal (issue 30): the seal's user-data
(_cloud/seal.py), the seed composition, the options, the clone's seed in its definition and
the refusals. Pure: no libvirt, no files except a tmp_path. The real clones that boot and are
read back from their images: tests/integration/test_clones_seal.py (make cloud-guests)."""
import json
import os

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seal
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed_store
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import options
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import clone
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.manager import DomainError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

SEEDS = '/var/lib/libvirt/boot/kvmops-seeds'
SOURCE = """<domain type='qemu'>
  <name>tpl</name>
  <uuid>6f1c1a52-8c1e-4c8e-9a55-0d0c1a7b8e01</uuid>
  <memory unit='KiB'>262144</memory>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://debian.org/debian/12"/>
    </libosinfo:libosinfo>
  </metadata>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/tpl.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/boot/kvmops-seeds/tpl/cidata.iso'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/iso/tools.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'><mac address='52:54:00:11:22:33'/><source network='default'/></interface>
    <serial type='pty'><target port='0'/></serial>
  </devices>
</domain>"""


def params(**kw):
    p = {'name': 'c1', 'state': 'present', 'clone_from': {'name': 'tpl', 'mode': 'linked'}}
    p.update(kw)
    return p


# ------------------------------------------------------------------ the seal's user-data
def test_seal_adds_its_bootcmd_first_and_ssh_deletekeys():
    cfg = seal.user_data({'bootcmd': ['echo mine'], 'packages': ['htop']})
    assert cfg['ssh_deletekeys'] is True and cfg['packages'] == ['htop']
    assert cfg['bootcmd'][-1] == 'echo mine' and len(cfg['bootcmd']) == len(seal.BOOTCMD) + 1
    for cmd in cfg['bootcmd'][:-1]:
        assert cmd[:2] == ['cloud-init-per', 'instance']   # once per instance, not per boot
    text = json.dumps(cfg)
    assert 'systemd-machine-id-setup' in text and '/etc/machine-id' in text
    assert '/var/lib/dbus/machine-id' in text
    assert '/etc/udev/rules.d/70-persistent-net.rules' in text
    assert seal.user_data({}) == seal.user_data({})        # same input, same seed bytes


@pytest.mark.parametrize('cfg, message', [
    (None, 'cloud-config'),
    ({'ssh_deletekeys': False}, 'ssh_deletekeys'),
    ({'bootcmd': 'echo x'}, 'must be a list'),
])
def test_seal_refuses_user_data_that_cannot_carry_it(cfg, message):
    with pytest.raises(KvmopsError) as exc:
        seal.user_data(cfg)
    assert message in str(exc.value) and 'seal' in str(exc.value)


def test_the_machine_id_script_keeps_a_dbus_symlink_and_needs_systemd():
    script = seal.MACHINE_ID_SCRIPT
    assert script.startswith('command -v systemd-machine-id-setup >/dev/null || exit 0')
    assert '[ ! -L /var/lib/dbus/machine-id ]' in script
    # removed first: systemd-machine-id-setup keeps an id that is there
    assert script.index('rm -f /etc/machine-id') < script.index('; systemd-machine-id-setup')


def test_windows_ids():
    assert seal.is_windows('http://microsoft.com/win/10')
    assert seal.is_windows('http://microsoft.com/win/2k22')
    assert not seal.is_windows('http://debian.org/debian/12') and not seal.is_windows(None)


# ------------------------------------------------------------------ the seed
def test_a_sealed_seed_has_a_new_instance_id_and_the_seal_in_its_user_data():
    files, _w = seed.build({'seal': True, 'user_data': {'bootcmd': ['echo mine']}}, 'c1')
    meta = json.loads(files['meta-data'])
    assert meta['instance-id'] == 'iid-c1' and meta['local-hostname'] == 'c1'
    assert files['user-data'].startswith('#cloud-config\n')
    cfg = json.loads(files['user-data'].split('\n', 1)[1])
    assert cfg['bootcmd'][0][:3] == ['cloud-init-per', 'instance', 'kvmops_seal_machine_id']
    assert cfg['bootcmd'][-1] == 'echo mine'
    plain, _w = seed.build({'user_data': {'bootcmd': ['echo mine']}}, 'c1')
    assert 'cloud-init-per' not in plain['user-data']   # no seal, no additions


def test_a_script_user_data_cannot_carry_the_seal():
    with pytest.raises(KvmopsError) as exc:
        seed.build({'seal': True, 'user_data': '#!/bin/sh\necho hi\n'}, 'c1')
    assert 'cloud-config' in str(exc.value)


# ------------------------------------------------------------------ the options
def test_argspec_has_seal_inside_clone_from_default_false():
    opt = argspec.guest_options()['clone_from']['options']['seal']
    assert opt == {'type': 'bool', 'default': False}


def test_cloud_init_with_clone_from_gives_the_clone_its_seed_disk():
    o = options.from_params(params(cloud_init={'hostname': 'c1', 'seed_dir': SEEDS}))
    assert o.spec['clone_from'] == {'name': 'tpl', 'mode': 'linked', 'seal': False}
    assert [d['path'] for d in o.spec['disks']] == [SEEDS + '/c1/cidata.iso']
    assert o.spec['disks'][0]['readonly'] is True
    assert o.cloud['cloud_init'].get('seal') is None


def test_seal_without_cloud_init_implies_a_minimal_seed():
    o = options.from_params(params(clone_from={'name': 'tpl', 'mode': 'full', 'seal': True}))
    assert o.cloud['cloud_init']['seal'] is True
    assert o.cloud['seed_iso'] == SEEDS + '/c1/cidata.iso'
    files, _w = seed.build(o.cloud['cloud_init'], 'c1')
    assert 'kvmops_seal_machine_id' in files['user-data']


def test_seal_with_cloud_init_marks_the_seed_and_absent_implies_nothing():
    o = options.from_params(params(clone_from={'name': 'tpl', 'seal': True},
                                   cloud_init={'seed_dir': SEEDS}))
    assert o.cloud['cloud_init']['seal'] is True
    gone = options.from_params({'name': 'c1', 'state': 'absent',
                                'clone_from': {'name': 'tpl', 'seal': True}})
    assert gone.cloud is None


def test_plain_guest_still_needs_disks_for_cloud_init():
    with pytest.raises(KvmopsError) as exc:
        options.from_params({'name': 'g', 'cloud_init': {'seed_dir': SEEDS}})
    assert 'cloud_init needs disks' in str(exc.value)


# ------------------------------------------------------------------ the definition
def seed_disk():
    return options.from_params(params(cloud_init={'seed_dir': SEEDS})).spec['disks'][0]


def spec(**kw):
    s = {'name': 'c1', 'state': 'present', 'memory_mib': None, 'vcpus': None,
         'networks': None, 'graphics': None, 'serial': None, 'kernel': None, 'initrd': None,
         'cmdline': None}
    s.update(kw)
    return s


def test_the_clones_seed_replaces_the_sources_on_its_target():
    tree = lxml_util.parse(SOURCE)
    plans = clone.plan_disks(tree, 'tpl', 'c1', 'linked')
    out = clone.clone_definition(tree, spec(), plans, None, 'tpl', 'u', 'linked',
                                 seed_disk(), SEEDS + '/c1')
    t = lxml_util.parse(out)
    files = [(d.find('source').get('file'), d.find('target').get('dev'),
              d.find('readonly') is not None) for d in t.findall('devices/disk')]
    assert files == [('/img/c1.qcow2', 'vda', False),
                     (SEEDS + '/c1/cidata.iso', 'vdb', True),   # the template's seed is gone
                     ('/iso/tools.iso', 'sda', True)]           # other read-only disks shared
    assert SEEDS + '/tpl/' not in out
    rec = t.find('metadata/{urn:kvmops:hypervisor:clone:1}clone')
    assert rec.get('seed') == SEEDS + '/c1'


def test_a_source_without_a_seed_gets_the_clones_after_its_last_disk():
    xml = SOURCE.replace('kvmops-seeds/tpl/cidata.iso', 'other/seed.img')
    tree = lxml_util.parse(xml)
    assert clone.seed_disks(tree) == []   # only kvmops' cidata.iso is recognised
    out = clone.clone_definition(tree, spec(), clone.plan_disks(tree, 'tpl', 'c1', 'full'),
                                 None, 'tpl', 'u', 'full', seed_disk(), SEEDS + '/c1')
    disks = lxml_util.parse(out).findall('devices/disk')
    assert [d.find('target').get('dev') for d in disks] == ['vda', 'vdb', 'sda', 'vdc']
    assert disks[-1].find('source').get('file') == SEEDS + '/c1/cidata.iso'


class FakeCloud(object):
    name = 'cloud'

    def __init__(self, ci):
        self.cloud = {'cloud_init': ci, 'seed_directory': SEEDS + '/c1',
                      'seed_iso': SEEDS + '/c1/cidata.iso', 'port_forwards': []}


class FakeManager(object):
    def __init__(self, seal_it=True, ci=None):
        self.spec = options.from_params(params(
            clone_from={'name': 'tpl', 'mode': 'linked', 'seal': seal_it},
            cloud_init=ci)).spec
        self.cloud = FakeCloud(ci if ci is not None else {'seal': True})
        self.warnings = []

    def feature(self, name):
        return self.cloud if name == 'cloud' else None

    def warn(self, msg):
        self.warnings.append(msg)


def test_seal_of_a_windows_source_is_refused_naming_sysprep():
    xml = SOURCE.replace('http://debian.org/debian/12', 'http://microsoft.com/win/2k22')
    with pytest.raises(DomainError) as exc:
        clone.CloneFeature().plan_seed(FakeManager(), lxml_util.parse(xml))
    assert 'sysprep' in str(exc.value) and '/generalize' in str(exc.value)
    # without seal a Windows template clones as before
    clone.CloneFeature().plan_seed(FakeManager(seal_it=False, ci={'seed_dir': SEEDS}),
                                   lxml_util.parse(xml))


def test_seal_of_a_source_without_a_seed_warns_that_cloud_init_must_be_in_the_image():
    m = FakeManager()
    f = clone.CloneFeature()
    f.plan_seed(m, lxml_util.parse(SOURCE.replace('kvmops-seeds/tpl/cidata.iso', 'x.img')))
    assert any('is NOT sealed' in w for w in m.warnings)
    m = FakeManager()
    f.plan_seed(m, lxml_util.parse(SOURCE))
    assert m.warnings == [] and f.seed['path'] == SEEDS + '/c1/cidata.iso'


def test_the_sources_instance_id_is_refused_for_a_sealed_clone(tmp_path):
    src_dir = tmp_path / 'tpl'
    src_dir.mkdir()
    (src_dir / 'meta-data').write_text(json.dumps({'instance-id': 'iid-same'}))
    xml = SOURCE.replace(SEEDS + '/tpl/cidata.iso', str(src_dir / 'cidata.iso'))
    assert clone.source_instance_ids([str(src_dir / 'cidata.iso')]) == {'iid-same'}
    for seal_it, refused in ((True, True), (False, False)):
        m = FakeManager(seal_it=seal_it, ci={'seed_dir': SEEDS, 'instance_id': 'iid-same'})
        f = clone.CloneFeature()
        if refused:
            with pytest.raises(DomainError) as exc:
                f.plan_seed(m, lxml_util.parse(xml))
            assert 'iid-same' in str(exc.value) and 'not be sealed' in str(exc.value)
        else:
            f.plan_seed(m, lxml_util.parse(xml))
            assert any('ignores the clone' in w for w in m.warnings)
    m = FakeManager(ci={'seed_dir': SEEDS})   # the default iid-c1 differs: fine
    clone.CloneFeature().plan_seed(m, lxml_util.parse(xml))
    assert m.warnings == []


def test_an_existing_clone_compares_no_disks():
    m = FakeManager()
    s = clone.CloneFeature().compare_spec(m, dict(m.spec))
    assert s['disks'] is None
    plain = {'clone_from': None, 'disks': [{'path': '/x'}]}
    assert clone.CloneFeature().compare_spec(m, plain) is plain


def test_only_a_seed_directory_named_after_the_guest_is_removable(tmp_path):
    d = tmp_path / 'c1'
    d.mkdir()
    for name in ('user-data', 'meta-data', 'cidata.iso'):
        (d / name).write_text('x')
    assert seed_store.is_seed_directory(str(d), 'c1')
    assert not seed_store.is_seed_directory(str(d), 'c2')
    (d / 'precious').write_text('x')
    assert not seed_store.is_seed_directory(str(d), 'c1')
    os.symlink(str(d), str(tmp_path / 'c3'))
    assert not seed_store.is_seed_directory(str(tmp_path / 'c3'), 'c3')
    assert not seed_store.is_seed_directory(str(tmp_path / 'none'), 'none')
