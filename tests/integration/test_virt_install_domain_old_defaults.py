"""A guest defined with the module's OLD defaults stays unchanged on a re-run (issue 14).

Issue 14 changed what a NEW guest gets (q35, guest agent channel, virtio-rng, pm off,
discard=unmap, libosinfo metadata). Drift compares only what the options ask for, so a
guest that the module defined before (machine pc, none of those devices) must not drift,
be redefined or need a restart when the same playbook runs again. OLD_XML is what the
module built for the guide's CentOS 7 guest before issue 14 (tests/golden/domains/
linux-text-console.xml then), with this test's names and type qemu.
"""
import os

import libvirt
from lxml import etree

from support.ansible_run import run_module

OLD_XML = """<domain type="qemu">
  <name>{name}</name>
  <memory unit="MiB">1024</memory>
  <currentMemory unit="MiB">1024</currentMemory>
  <vcpu placement="static">1</vcpu>
  <os>
    <type arch="x86_64">hvm</type>
    <boot dev="hd"/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <clock offset="utc">
    <timer name="rtc" tickpolicy="catchup"/>
    <timer name="pit" tickpolicy="delay"/>
    <timer name="hpet" present="no"/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="raw"/>
      <source file="{disk}"/>
      <target dev="vda" bus="virtio"/>
    </disk>
    <interface type="bridge">
      <source bridge="virbr0"/>
      <model type="virtio"/>
    </interface>
    <serial type="pty">
      <target port="0"/>
    </serial>
    <console type="pty">
      <target type="serial" port="0"/>
    </console>
  </devices>
</domain>
"""


def test_guest_with_old_defaults_does_not_drift(conn, prefix, image_dir):
    name = prefix + 'old'
    disk = os.path.join(image_dir, 'old.img')
    with open(disk, 'wb') as f:
        f.truncate(10 * 1024 ** 3)
    dom = conn.defineXML(OLD_XML.format(name=name, disk=disk))
    before = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert 'pc-i440fx' in before
    args = {'name': name, 'memory': 1024, 'vcpus': 1, 'os_variant': 'centos7.0',
            'virt_type': 'qemu', 'state': 'present',
            'disks': [{'path': disk, 'size': 10, 'format': 'raw'}],
            'networks': [{'bridge': 'virbr0'}], 'graphics': {'type': 'none'}}
    for check in (True, False):
        res = run_module('virt_install_domain', args, check=check, diff=True)
        assert not res.get('failed'), res.get('msg')
        assert not res['changed'], (res['actions'], res['differences'])
        assert res['differences'] == [] and not res['restart_required']
        # An existing guest: libosinfo is not even read.
        assert res['os_info']['source'] == 'families', res['os_info']
    after = conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert after == before
    tree = etree.fromstring(after.encode())
    assert tree.find('devices/channel') is None and tree.find('devices/rng') is None
    assert tree.find('pm') is None
