"""Smoke test of the test bed: the tiny guest boots under QEMU emulation (TCG) and powers off
on an ACPI button press. Uses libvirt-python directly: no collection code involved."""
import os

import libvirt

from support.libvirt_helpers import wait_for_state, wait_for_text

DOMAIN_XML = """
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 kvmops.smoke=1</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='file'><source path='{log}'/><target port='0'/></serial>
    <console type='file'><source path='{log}'/><target type='serial' port='0'/></console>
  </devices>
</domain>
"""


def test_tiny_guest_boots_and_powers_off_on_acpi(conn, prefix, image_dir, tiny):
    name = prefix + 'smoke'
    log = os.path.join(image_dir, 'serial.log')
    dom = conn.defineXML(DOMAIN_XML.format(name=name, log=log, **tiny))
    dom.create()
    assert dom.info()[0] == libvirt.VIR_DOMAIN_RUNNING

    console = wait_for_text(log, 'KVMOPS-READY', timeout=90)
    assert 'KVMOPS-TINY-GUEST BOOTED' in console
    assert 'KVMOPS-CMDLINE: console=ttyS0 kvmops.smoke=1' in console

    dom.shutdown()  # ACPI power button; the guest's acpid powers off
    wait_for_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, timeout=60)
    assert 'KVMOPS-POWEROFF' in open(log).read()

    dom.undefine()
    assert name not in [d.name() for d in conn.listAllDomains()]
