"""Smoke test of the test bed: the tiny guest boots under QEMU emulation (TCG) and powers off
on an ACPI button press. Uses libvirt-python directly: no collection code involved."""
import os

import libvirt

from support.libvirt_helpers import tiny_guest_xml, wait_for_state, wait_for_text


def test_tiny_guest_boots_and_powers_off_on_acpi(conn, prefix, image_dir, tiny):
    name = prefix + 'smoke'
    log = os.path.join(image_dir, 'serial.log')
    dom = conn.defineXML(tiny_guest_xml(name, tiny, log, cmdline='console=ttyS0 kvmops.smoke=1'))
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
