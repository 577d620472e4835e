"""The pure parts of clone_from and template (_guest/features/clone.py): the options, the
disk plan, the clone's definition. The real clones: tests/integration/test_clones.py."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import options
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import clone
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.manager import DomainError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

SOURCE = """<domain type='qemu'>
  <name>tmpl</name>
  <uuid>6f1c1a52-8c1e-4c8e-9a55-0d0c1a7b8e01</uuid>
  <memory unit='KiB'>262144</memory>
  <currentMemory unit='KiB'>262144</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <metadata>
    <kvmopstpl:template xmlns:kvmopstpl='urn:kvmops:hypervisor:template:1'>
      <kvmopstpl:image path='/img/tmpl-root.img' mode='0644'/>
    </kvmopstpl:template>
  </metadata>
  <os firmware='efi'><type>hvm</type><nvram>/var/lib/libvirt/qemu/nvram/tmpl_VARS.fd</nvram></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/img/tmpl-root.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='p' volume='data.qcow2'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/img/shared.img'/>
      <target dev='vdc' bus='virtio'/>
      <shareable/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/iso/x.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:11:22:33'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>
  </devices>
</domain>"""


def spec(**kw):
    s = {'name': 'c1', 'state': 'running', 'memory_mib': None, 'vcpus': None,
         'networks': None, 'graphics': None, 'serial': None, 'kernel': None, 'initrd': None,
         'cmdline': None}
    s.update(kw)
    return s


def test_argspec_choices_are_the_feature_modes():
    opts = argspec.guest_options()
    assert opts['clone_from']['options']['mode']['choices'] == list(clone.MODES)
    assert opts['template']['type'] == 'bool'


@pytest.mark.parametrize('params, message', [
    ({'clone_from': {'name': 'c1'}}, 'is the guest itself'),
    ({'clone_from': {'name': 't'}, 'disks': [{'path': '/x'}]}, 'remove disks'),
    ({'clone_from': {'name': 't'}, 'install': {'import': True}}, 'remove install'),
    ({'template': True}, 'state: stopped'),
])
def test_normalize_refuses_what_cannot_go_together(params, message):
    with pytest.raises(DomainError) as exc:
        clone.normalize(params, spec())
    assert message in str(exc.value)


def test_from_params_puts_clone_and_template_into_the_spec():
    o = options.from_params({'name': 'c1', 'state': 'stopped', 'template': True,
                             'clone_from': {'name': 't', 'mode': 'linked'}})
    assert o.spec['clone_from'] == {'name': 't', 'mode': 'linked', 'seal': False}
    assert o.spec['template'] is True
    plain = options.from_params({'name': 'c1'})
    assert plain.spec['clone_from'] is None and plain.spec['template'] is None


def test_plan_copies_writable_disks_and_shares_the_others():
    plans = clone.plan_disks(lxml_util.parse(SOURCE), 'tmpl', 'c1', 'full')
    assert [p['action'] for p in plans] == ['copy', 'volume-copy', 'share', 'share']
    assert plans[0]['path'] == '/img/c1-root.img' and plans[0]['format'] == 'raw'
    assert plans[1]['new_volume'] == 'c1-data.qcow2'
    linked = clone.plan_disks(lxml_util.parse(SOURCE), 'tmpl', 'c1', 'linked')
    assert [p['action'] for p in linked][:2] == ['link', 'volume-link']


def test_the_format_comes_from_the_definition_never_the_header():
    xml = SOURCE.replace("<driver name='qemu' type='raw'/>\n      <source file='/img/tmpl-root",
                         "<driver name='qemu'/>\n      <source file='/img/tmpl-root")
    with pytest.raises(DomainError) as exc:
        clone.plan_disks(lxml_util.parse(xml), 'tmpl', 'c1', 'full')
    assert 'no <driver type>' in str(exc.value)


def test_block_disks_are_refused_with_the_fix():
    xml = SOURCE.replace("<disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>"
                         "\n      <source file='/img/tmpl-root.img'/>",
                         "<disk type='block' device='disk'>\n      <driver name='qemu' "
                         "type='raw'/>\n      <source dev='/dev/sdz'/>")
    with pytest.raises(DomainError) as exc:
        clone.plan_disks(lxml_util.parse(xml), 'tmpl', 'c1', 'full')
    assert 'block disk' in str(exc.value) and 'shareable' in str(exc.value)


def test_clone_definition_new_identity_copies_nvram_keeps_tpm_without_state():
    tree = lxml_util.parse(SOURCE)
    plans = clone.plan_disks(tree, 'tmpl', 'c1', 'linked')
    nvram = clone.nvram_plan(tree, 'tmpl', 'c1')
    assert nvram == ('/var/lib/libvirt/qemu/nvram/tmpl_VARS.fd',
                     '/var/lib/libvirt/qemu/nvram/c1_VARS.fd', True)
    out = clone.clone_definition(tree, spec(memory_mib=512, vcpus=2), plans, nvram, 'tmpl',
                                 'uuid-1', 'linked')
    t = lxml_util.parse(out)
    assert t.find('name').text == 'c1' and t.find('uuid') is None
    assert t.find('devices/interface/mac') is None          # libvirt makes a new one
    assert t.find('memory').text == '524288' and t.find('vcpu').text == '2'
    assert t.find('os/nvram').text.endswith('c1_VARS.fd')
    disks = t.findall('devices/disk')
    assert disks[0].find('source').get('file') == '/img/c1-root.img'
    assert disks[0].find('driver').get('type') == 'qcow2'   # the overlay
    assert disks[2].find('source').get('file') == '/img/shared.img'
    assert t.find('devices/tpm') is not None                 # swtpm state is per UUID
    assert 'urn:kvmops:hypervisor:template:1' not in out
    rec = t.find('metadata/{urn:kvmops:hypervisor:clone:1}clone')
    assert rec.get('mode') == 'linked' and rec.get('source_uuid') == 'uuid-1'
    assert lxml_util.parse(SOURCE).find('name').text == 'tmpl'  # the source untouched


def test_a_source_logging_to_a_file_needs_the_clones_own_serial():
    xml = SOURCE.replace("<serial type='pty'><target port='0'/></serial>",
                         "<serial type='file'><source path='/var/log/t.log'/>"
                         "<target port='0'/></serial>")
    tree = lxml_util.parse(xml)
    with pytest.raises(DomainError) as exc:
        clone.clone_definition(tree, spec(), [], None, 'tmpl', 'u', 'full')
    assert '/var/log/t.log' in str(exc.value) and 'serial' in str(exc.value)
    out = clone.clone_definition(tree, spec(serial={'type': 'file', 'path': '/var/log/c1.log'}),
                                 [], None, 'tmpl', 'u', 'full')
    assert '/var/log/c1.log' in out and '/var/log/t.log' not in out


def test_clone_name_for():
    assert clone.clone_name_for('/d/tmpl.qcow2', 'tmpl', 'c1') == '/d/c1.qcow2'
    assert clone.clone_name_for('/d/root.img', 'tmpl', 'c1') == '/d/c1-root.img'


def test_autoselected_uefi_firmware_has_its_nvram_at_the_default_path():
    tree = lxml_util.parse("<domain><name>t</name><os firmware='efi'><type>hvm</type></os>"
                           "<devices/></domain>")
    assert clone.nvram_plan(tree, 't', 'c') == ('/var/lib/libvirt/qemu/nvram/t_VARS.fd',
                                                '/var/lib/libvirt/qemu/nvram/c_VARS.fd', False)
    out = clone.clone_definition(tree, spec(name='c'), [], clone.nvram_plan(tree, 't', 'c'),
                                 't', 'u', 'full')
    assert '<nvram' not in out   # libvirt's default path for the clone: its own file
    plain = lxml_util.parse("<domain><name>t</name><os><type>hvm</type></os><devices/></domain>")
    assert clone.nvram_plan(plain, 't', 'c') is None


def test_a_missing_source_image_is_named_before_anything_is_copied(tmp_path):
    """check_space reads each copied image's size: a missing one fails the plan, naming
    the source and the fix (issue 30, free space for clones)."""
    feature = clone.CloneFeature()
    feature.plans = [{'index': 0, 'action': 'copy', 'kind': 'file', 'format': 'raw',
                      'source': str(tmp_path / 'gone.img'), 'path': str(tmp_path / 'c.img')}]

    class M(object):
        conn = None
        spec = {'name': 'c', 'clone_from': {'name': 'tpl', 'mode': 'full'}}
        warn = staticmethod(lambda msg: None)
    with pytest.raises(clone.DomainError) as exc:
        feature.check_space(M())
    assert 'images of tpl' in str(exc.value) and 'gone.img' in str(exc.value)


FORWARDS = """
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/seeds/tmpl/cidata.iso'/>
      <target dev='vdz' bus='virtio'/>
      <readonly/>
    </disk>
    <interface type='user'>
      <backend type='passt'/>
      <model type='virtio'/>
      <portForward proto='tcp' address='127.0.0.1'><range start='2222' to='22'/></portForward>
    </interface>
  </devices>"""


def test_a_clone_takes_a_copy_of_the_source_seed_and_none_of_its_host_ports():
    tree = lxml_util.parse(SOURCE.replace('\n  </devices>', FORWARDS))
    out = clone.clone_definition(tree, spec(), [], None, 'tmpl', 'u', 'full',
                                 seed_copy=('/seeds/tmpl/cidata.iso', '/seeds/c1/cidata.iso'))
    t = lxml_util.parse(out)
    files = [d.find('source').get('file') for d in t.findall('devices/disk')]
    assert '/seeds/c1/cidata.iso' in files and '/seeds/tmpl/cidata.iso' not in files
    passt = [i for i in t.findall('devices/interface') if i.get('type') == 'user']
    assert len(passt) == 1 and passt[0].find('portForward') is None   # the NIC stays
    # With port forwards of its own (the cloud feature adds them), nothing is dropped here.
    kept = clone.clone_definition(tree, spec(), [], None, 'tmpl', 'u', 'full', keep_forwards=True)
    assert "start='2222'" in kept or 'start="2222"' in kept


def test_drop_forwards_names_what_it_dropped():
    tree = lxml_util.parse(SOURCE.replace('\n  </devices>', FORWARDS))
    assert clone.drop_forwards(tree) == [('tcp', '127.0.0.1', 2222, 22)]
    assert clone.drop_forwards(tree) == []


def test_copy_seed_copies_bytes_and_modes_and_never_overwrites(tmp_path):
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed_store
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
    src = tmp_path / 'tmpl'
    src.mkdir(mode=0o750)
    (src / 'cidata.iso').write_bytes(b'ISO')
    (src / 'meta-data').write_text('{"instance-id": "iid-tmpl"}')
    (src / 'cidata.iso').chmod(0o640)
    seed_store.copy_seed(str(src), str(tmp_path / 'c1'))
    assert (tmp_path / 'c1' / 'cidata.iso').read_bytes() == b'ISO'
    assert (tmp_path / 'c1' / 'meta-data').read_text() == '{"instance-id": "iid-tmpl"}'
    assert oct((tmp_path / 'c1' / 'cidata.iso').stat().st_mode & 0o777) == '0o640'
    assert seed_store.is_seed_directory(str(tmp_path / 'c1'), 'c1')
    with pytest.raises(KvmopsError) as exc:
        seed_store.copy_seed(str(src), str(tmp_path / 'c1'))
    assert 'exists already' in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['c1', 'tmpl']   # no temporary left


def test_the_sources_record_of_what_kvmops_made_is_not_the_clones():
    """The source's record names its images and its serial log: a clone that kept it would
    delete the source's log with remove_storage."""
    rec = ("<kvmops:guest xmlns:kvmops='https://kvmops.hypervisor/xmlns/guest/1'>"
           "<kvmops:disk path='/img/tmpl-root.img' format='raw' created='yes'/>"
           "<kvmops:log path='/var/log/tmpl.log'/></kvmops:guest>\n  </metadata>")
    tree = lxml_util.parse(SOURCE.replace('\n  </metadata>', rec, 1))
    out = clone.clone_definition(tree, spec(), [], None, 'tmpl', 'u', 'full')
    assert '/var/log/tmpl.log' not in out and 'kvmops.hypervisor/xmlns/guest' not in out
    assert 'urn:kvmops:hypervisor:clone:1' in out
