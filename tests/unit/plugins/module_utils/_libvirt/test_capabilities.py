"""The one capabilities reader, on the capabilities XML of this test bed's libvirt 9.0
(trimmed by hand) and libvirt's test driver: pure parsing."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import capabilities as C

XML = """<capabilities>
  <host>
    <uuid>00000000-0000-0000-0000-000000000000</uuid>
    <cpu><arch>x86_64</arch></cpu>
    <secmodel><model>selinux</model><doi>0</doi></secmodel>
    <secmodel><model>dac</model><doi>0</doi><baselabel type='kvm'>+64055:+994</baselabel></secmodel>
  </host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'><wordsize>64</wordsize><emulator>/usr/bin/qemu-system-x86_64</emulator>
      <machine maxCpus='255'>pc-i440fx-7.2</machine>
      <machine canonical='pc-i440fx-7.2' maxCpus='255'>pc</machine>
      <machine canonical='pc-q35-7.2' maxCpus='288'>q35</machine>
      <domain type='qemu'/>
      <domain type='kvm'><emulator>/usr/bin/kvm</emulator></domain>
    </arch>
  </guest>
  <guest>
    <os_type>hvm</os_type>
    <arch name='aarch64'><emulator>/usr/bin/qemu-system-aarch64</emulator>
      <machine canonical='virt-7.2'>virt</machine><domain type='qemu'/></arch>
  </guest>
</capabilities>"""


def test_host_guests_machines_and_security_drivers():
    caps = C.Capabilities(XML)
    assert caps.host_arch == 'x86_64'
    assert caps.guest_arches() == ['aarch64', 'x86_64']
    assert caps.domain_types('x86_64') == [('qemu', '/usr/bin/qemu-system-x86_64'),
                                           ('kvm', '/usr/bin/kvm')]
    assert caps.machine_aliases('x86_64') == {'pc': 'pc-i440fx-7.2', 'q35': 'pc-q35-7.2'}
    assert caps.machine_aliases('aarch64') == {'virt': 'virt-7.2'}
    assert caps.security_models() == ['selinux', 'dac']


def test_read_asks_libvirt_once():
    libvirt = pytest.importorskip('libvirt')
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    conn = libvirt.open('test:///default')
    try:
        caps = C.read(conn)
    finally:
        conn.close()
    assert caps.host_arch and caps.guest_arches()
