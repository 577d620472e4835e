"""virt_backup's pure logic: which disks, the level and why (broken chains, raw disks, chain
length), retention, the backup and checkpoint XML, the manifest, and the restored guest's XML."""
import json

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import domain_disks
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import plan, restore

DOMAIN = """<domain type='qemu'><name>vm1</name><uuid>0f0e0d0c-0000-4000-8000-000000000001</uuid>
  <os><type arch='x86_64' machine='q35'>hvm</type><nvram>/var/lib/libvirt/qemu/nvram/vm1_VARS.fd</nvram></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='/vm/vm1.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='%s'/>
      <source file='/vm/vm1-data.img'/><target dev='vdb' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>
      <source file='/iso/install.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='/seeds/vm1.iso'/><target dev='vdz' bus='virtio'/><readonly/></disk>
    <disk type='network' device='disk'><driver name='qemu' type='raw'/>
      <source protocol='rbd' name='pool/img'/><target dev='vdc' bus='virtio'/></disk>
    <interface type='network'><mac address='52:54:00:11:22:33'/><source network='default'/></interface>
    <serial type='file'><source path='/var/log/vm1.log'/><target port='0'/></serial>
    <serial type='unix'><source mode='bind' path='/run/vm1.sock'/><target port='1'/></serial>
    <console type='file'><source path='/var/log/vm1.log'/><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>
  </devices></domain>"""


def disks(fmt='qcow2'):
    return plan.select_disks(domain_disks.disks(lxml_util.parse(DOMAIN % fmt)))


def test_select_disks_takes_writable_file_disks_and_says_why_not_the_others():
    inc, skipped = disks()
    assert [d['target'] for d in inc] == ['vda', 'vdb']
    why = dict((s['target'], s['reason']) for s in skipped)
    assert 'cdrom' in why['sda'] and 'read-only' in why['vdz'] and 'network' in why['vdc']


def test_agent_channel_and_nvram():
    root = lxml_util.parse(DOMAIN % 'qcow2')
    assert domain_disks.agent_channel(root) == {'state': 'connected'}
    assert domain_disks.nvram_path(root) == '/var/lib/libvirt/qemu/nvram/vm1_VARS.fd'


def manifest_with(points=1, uuid='u1', host='hv1', fmt='qcow2'):
    d, dummy = disks(fmt)
    m = plan.new_manifest('vm1', uuid, host, '20261207T010000Z', d, 0)
    for i in range(points):
        m['points'].append(plan.point_entry(i, 'full' if i == 0 else 'inc',
                                            plan.checkpoint_name('20261207T010000Z', i), 0, 10 + i,
                                            False, {'vda': {'file': 'vda.qcow2', 'size': 1, 'sha256': 'x',
                                                            'virtual_size': 1}}, {}))
    return m


@pytest.mark.parametrize('change,words', [
    (dict(uuid='u2'), 'redefined'),
    (dict(host='hv2'), 'moved host'),
    (dict(checkpoints=[]), 'checkpoint kvmops-backup-20261207T010000Z-00 is missing'),
])
def test_chain_problems(change, words):
    m = manifest_with()
    d, dummy = disks()
    cps = change.get('checkpoints', [plan.checkpoint_name('20261207T010000Z', 0)])
    problem = plan.chain_problem(m, change.get('uuid', 'u1'), change.get('host', 'hv1'), d, cps)
    assert words in problem


def test_a_disk_added_breaks_the_chain():
    m = manifest_with()
    d, dummy = disks()
    d = d + [{'target': 'vdd', 'source': '/vm/new.qcow2', 'format': 'qcow2'}]
    problem = plan.chain_problem(m, 'u1', 'hv1', d, [plan.checkpoint_name('20261207T010000Z', 0)])
    assert 'disks changed' in problem and 'added or changed: vdd' in problem


def test_levels():
    m = manifest_with(points=2)
    assert plan.choose_level('auto', None, 'there is no backup chain yet', [], 7)[0] == 'full'
    level, reason = plan.choose_level('auto', m, None, [], 7)
    assert level == 'inc' and 'kvmops-backup-20261207T010000Z-01' in reason
    level, reason = plan.choose_level('auto', m, None, [], 2)
    assert level == 'full' and 'chain_length=2' in reason
    assert plan.choose_level('inc', m, None, [], 2)[0] == 'inc'
    assert plan.choose_level('full', m, None, [], 7) == ('full', 'level=full')
    with pytest.raises(KvmopsError, match='level=auto'):
        plan.choose_level('inc', m, 'its last checkpoint x is missing', [], 7)
    level, reason = plan.choose_level('auto', m, None, ['vdb'], 7)
    assert level == 'full' and 'vdb are raw' in reason
    with pytest.raises(KvmopsError, match='raw'):
        plan.choose_level('inc', m, None, ['vdb'], 7)


def test_raw_disks():
    d, dummy = disks('raw')
    assert plan.raw_disks(d) == ['vdb']


def test_retention_never_removes_the_newest_chain():
    chains = [('20261201T000000Z', 100), ('20261202T000000Z', 200), ('20261203T000000Z', 300)]
    assert plan.retention(chains, 2, None, 400) == ['20261201T000000Z']
    assert plan.retention(chains, 1, None, 400) == ['20261202T000000Z', '20261201T000000Z']
    assert plan.retention(chains, 5, None, 400) == []
    # by age: older than 1 day, but the newest chain stays whatever its age
    assert plan.retention(chains, 5, 1, 300 + 2 * 86400) == ['20261202T000000Z', '20261201T000000Z']


def test_backup_and_checkpoint_xml():
    d, dummy = disks()
    xml = plan.backup_xml(d, ['vda', 'vdb', 'sda'], {'vda': '/b/vda.qcow2', 'vdb': '/b/vdb.qcow2'},
                          incremental='cp0')
    root = lxml_util.parse(xml)
    assert root.get('mode') == 'push' and root.findtext('incremental') == 'cp0'
    assert [(x.get('name'), x.get('backup')) for x in root.findall('disks/disk')] == [
        ('vda', 'yes'), ('vdb', 'yes'), ('sda', 'no')]
    assert root.find("disks/disk[@name='vda']/target").get('file') == '/b/vda.qcow2'
    cp = lxml_util.parse(plan.checkpoint_xml('cp1', d[:1], ['vda', 'vdb']))
    assert [(x.get('name'), x.get('checkpoint')) for x in cp.findall('disks/disk')] == [
        ('vda', 'bitmap'), ('vdb', 'no')]
    sized = "<domaincheckpoint><name>c</name><disks><disk name='vda' checkpoint='bitmap' size='131072'/></disks></domaincheckpoint>"
    assert plan.checkpoint_sizes(sized) == {'vda': 131072}


def test_names_and_manifest_round_trip():
    assert plan.chain_id(0) == '19700101T000000Z'
    assert plan.chain_id(0, ['19700101T000000Z']) == '19700101T000000Z-1'
    assert plan.is_chain_dir('19700101T000000Z-1') and not plan.is_chain_dir('../etc')
    assert plan.parse_point_dir('03-inc') == (3, 'inc') and plan.parse_point_dir('x-inc') is None
    m = manifest_with(2)
    assert plan.parse_manifest(plan.manifest_text(m), 'm') == m
    with pytest.raises(KvmopsError, match='not valid JSON'):
        plan.parse_manifest('{', 'm')
    with pytest.raises(KvmopsError, match='not a kvmops manifest'):
        plan.parse_manifest(json.dumps({'format': 99, 'points': []}), 'm')


@pytest.mark.parametrize('params,words', [
    ({}, 'domain'),
    ({'domain': 'a b'}, 'guest name'),
    ({'domain': 'vm1', 'repository': 'rel/path'}, 'absolute'),
    ({'domain': 'vm1', 'repository': '/r', 'keep_chains': 0}, 'keep_chains'),
    ({'domain': 'vm1', 'repository': '/r', 'chain_length': 0}, 'chain_length'),
])
def test_normalize_refuses_bad_input(params, words):
    with pytest.raises(KvmopsError, match=words):
        plan.normalize(params)


def test_normalize_merges_domain_and_domains():
    spec = plan.normalize({'domain': 'a', 'domains': ['b', 'a'], 'repository': '/r/'})
    assert spec['domains'] == ['a', 'b'] and spec['repository'] == '/r'


def test_new_guest_xml_has_a_new_identity_and_its_own_files():
    xml = restore.new_guest_xml(DOMAIN % 'raw', 'vm1-r', {'vda': '/out/vm1-r-vda.qcow2',
                                                          'vdb': '/out/vm1-r-vdb.qcow2'},
                                'qcow2', '/out', nvram='/out/vm1-r_VARS.fd')
    root = lxml_util.parse(xml)
    assert root.findtext('name') == 'vm1-r' and root.find('uuid') is None
    assert root.find('devices/interface/mac') is None
    files = [(d.find('target').get('dev'), d.find('source').get('file'), d.find('driver').get('type'))
             for d in root.findall('devices/disk') if d.find('source') is not None]
    assert ('vda', '/out/vm1-r-vda.qcow2', 'qcow2') in files and ('vdb', '/out/vm1-r-vdb.qcow2', 'qcow2') in files
    assert ('sda', '/iso/install.iso', 'raw') in files      # not backed up: as it was
    paths = [s.find('source').get('path') for s in root.findall('devices/serial')]
    assert paths == ['/out/vm1-r-serial1.log', '/out/vm1-r-serial2.sock'], paths
    assert root.find('devices/console/source').get('path') == '/out/vm1-r-serial1.log'
    assert root.findtext('os/nvram') == '/out/vm1-r_VARS.fd'


@pytest.mark.parametrize('params,words', [
    ({'domain': 'vm1', 'repository': '/r', 'action': 'guest', 'dest_dir': '/o'}, 'name'),
    ({'domain': 'vm1', 'repository': '/r', 'action': 'guest', 'dest_dir': '/o', 'name': 'vm1'}, 'new name'),
    ({'domain': 'vm1', 'repository': '/r', 'action': 'images'}, 'dest_dir'),
    ({'domain': 'vm1', 'repository': '/r', 'chain': '../x'}, 'not a chain name'),
])
def test_restore_normalize_refuses_bad_input(params, words):
    with pytest.raises(KvmopsError, match=words):
        restore.normalize(params)
