"""virt_snapshot's pure logic: which kind a guest can take and why, the snapshot XML (overlay
names, CD-ROMs left out), and what libvirt's snapshot XML says."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import plan

from support.assertions import raises_naming

DOMAIN = """<domain type='qemu'><name>vm1</name>
  <os>%s<type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='%s'/>
      <source file='/vm-images/vm1.img'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>
      <source file='/vm-images/install.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
    %s
  </devices></domain>"""


def domain(fmt='qcow2', os_extra='', devices=''):
    return lxml_util.parse(DOMAIN % (os_extra, fmt, devices))


def spec(**kw):
    base = {'domain': 'vm1', 'name': 's1'}
    base.update(kw)
    return plan.normalize(base)


def test_auto_takes_internal_for_qcow2_and_external_for_raw_or_uefi():
    assert plan.decide_kind('auto', domain())[0] == 'internal'
    kind, reason = plan.decide_kind('auto', domain('raw'))
    assert kind == 'external' and 'disk vda is raw' in reason
    kind, reason = plan.decide_kind('auto', domain(os_extra="<loader readonly='yes' type='pflash'>"
                                                            "/usr/share/OVMF/OVMF_CODE.fd</loader>"))
    assert kind == 'external' and 'UEFI from pflash' in reason
    assert plan.decide_kind('auto', lxml_util.parse(
        (DOMAIN % ('', 'qcow2', '')).replace("<os>", "<os firmware='efi'>")))[0] == 'external'
    with pytest.raises(KvmopsError) as exc:
        plan.decide_kind('internal', domain('raw'))
    assert 'kind=external' in str(exc.value)
    assert plan.decide_kind('external', domain())[0] == 'external'
    kind, reason = plan.decide_kind('auto', domain(), external_snapshots=['ext1'])
    assert kind == 'external' and 'already has external snapshots (ext1)' in reason


def test_external_snapshot_xml_covers_disks_not_cdroms():
    xml, overlays = plan.snapshot_xml(spec(description='x'), 'external', domain('raw'))
    assert overlays == ['/vm-images/vm1.s1.qcow2']
    root = lxml_util.parse(xml)
    assert root.findtext('description') == 'x'
    disks = dict((d.get('name'), d) for d in root.findall('disks/disk'))
    assert disks['sda'].get('snapshot') == 'no'
    assert disks['vda'].get('snapshot') == 'external'
    assert disks['vda'].find('source').get('file') == '/vm-images/vm1.s1.qcow2'
    overlays = plan.snapshot_xml(spec(external_dir='/snaps'), 'external', domain('raw'))[1]
    assert overlays == ['/snaps/vm1.s1.qcow2']
    xml, overlays = plan.snapshot_xml(spec(), 'internal', domain())
    assert overlays == [] and lxml_util.parse(xml).find('disks') is None


def test_agent_channel_is_found():
    assert not plan.has_agent_channel(domain())
    assert plan.has_agent_channel(domain(devices="<channel type='unix'><target type='virtio' "
                                                 "name='org.qemu.guest_agent.0'/></channel>"))


def test_snapshot_info_of_libvirts_xml():
    # trimmed `virsh snapshot-dumpxml` of an external disk-only snapshot (libvirt 9.0)
    xml = """<domainsnapshot><name>ext1</name><state>disk-snapshot</state>
      <parent><name>base</name></parent><creationTime>1796218000</creationTime>
      <memory snapshot='no'/><disks>
      <disk name='vda' snapshot='external' type='file'><driver type='qcow2'/>
        <source file='/vm-images/vm1.ext1.qcow2'/></disk>
      <disk name='sda' snapshot='no'/></disks><domain type='qemu'><name>vm1</name></domain>
      </domainsnapshot>"""
    info = plan.snapshot_info(xml, current_name='ext1', children=2)
    assert info == {'name': 'ext1', 'description': None, 'state': 'disk-snapshot', 'kind': 'external',
                    'memory': False, 'parent': 'base', 'created': 1796218000, 'current': True,
                    'children': 2, 'disks': [
                        {'name': 'vda', 'snapshot': 'external', 'file': '/vm-images/vm1.ext1.qcow2'},
                        {'name': 'sda', 'snapshot': 'no', 'file': None}]}


@pytest.mark.parametrize('params, message', [
    ({'name': None}, 'name is required'),
    ({'name': 'a/b'}, 'use letters, digits'),
    ({'external_dir': 'relative'}, 'absolute path'),
    ({'kind': 'both'}, 'choose one of auto, internal, external'),
])
def test_bad_input_names_the_option(params, message):
    raises_naming(KvmopsError, message, spec, **params)


def test_listed_needs_no_name():
    assert plan.normalize({'domain': 'vm1', 'state': 'listed'})['name'] is None


def test_two_disks_with_one_stem_get_two_overlays():
    """vm1.img and vm1.qcow2 (or two disks of one name in external_dir) would share the overlay
    vm1.s1.qcow2: both disks writing one file (issue 26). The second gets its target's name."""
    second = ("<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
              "<source file='/vm-images/vm1.qcow2'/><target dev='vdb' bus='virtio'/></disk>")
    overlays = plan.snapshot_xml(spec(), 'external', domain('raw', devices=second))[1]
    assert overlays == ['/vm-images/vm1.s1.qcow2', '/vm-images/vm1.s1.vdb.qcow2']
    other_dir = second.replace('/vm-images/vm1.qcow2', '/other/vm1.img')
    overlays = plan.snapshot_xml(spec(external_dir='/snaps'), 'external',
                                 domain('raw', devices=other_dir))[1]
    assert len(set(overlays)) == 2
