"""What a public console needs (issue 26), through the real modules, the real qemu.conf parser
and real certificate files: vnc_listen refuses a public VNC whose TLS has no x509 client
verification or whose server certificates QEMU's user cannot use, in both scopes;
virt_install_domain refuses a public SPICE listen without TLS and a password. Each case was
accepted on main before the rule was tightened. Public listens run in check mode, or are
refused: no test listens beyond loopback."""
import json
import os

import libvirt
import pytest

from support import paths
from support.ansible_run import run_tasks
from support.console_certs import QEMU_USER_CONF, server_cert_dir
from support.vnc import INACTIVE_SECURE, define_guest, read_bytes


@pytest.fixture
def certs():
    with server_cert_dir() as cert_dir:
        yield cert_dir


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / 'qemu.conf'
    path.write_bytes(read_bytes(os.path.join(paths.FIXTURES, 'qemu_conf',
                                             '9.0.0-debian12.conf'))
                     + QEMU_USER_CONF.encode())
    return path


def test_vnc_listen_host_scope_wants_verify_and_usable_certificates(conf, certs):
    before = conf.read_bytes()
    host = {'config': str(conf), 'listen': '0.0.0.0', 'tls': True, 'tls_cert_dir': certs,
            'port_max': 5950}
    no_verify, = run_tasks([{'kvmops.hypervisor.vnc_listen': dict(host, tls_verify=False)}],
                           ignore_errors=True)
    assert no_verify.get('failed') and 'vnc_tls_x509_verify is off' in no_verify['msg'], \
        no_verify
    assert 'set vnc_tls_x509_verify = 1 (vnc_listen tls_verify: true)' in no_verify['msg']
    # the whole rule met: accepted (check mode: nothing written, nothing listens)
    ok, = run_tasks([{'kvmops.hypervisor.vnc_listen': host}], check=True)
    assert ok['changed'] and not ok.get('failed'), ok
    open(os.path.join(certs, 'server-key.pem'), 'w').close()
    empty, = run_tasks([{'kvmops.hypervisor.vnc_listen': host}], ignore_errors=True)
    assert empty.get('failed') and 'server-key.pem is empty' in empty['msg'], empty
    assert 'guests with VNC would fail to start' in empty['msg']
    assert conf.read_bytes() == before


def test_vnc_listen_domains_scope_wants_more_than_vnc_tls(conn, prefix, image_dir, tiny, conf,
                                                          certs):
    guest = define_guest(conn, prefix + 'pub', tiny, image_dir)
    xml = guest.XMLDesc(INACTIVE_SECURE)
    conf.write_bytes(conf.read_bytes() + ('vnc_tls = 1\nvnc_tls_x509_cert_dir = "%s"\n'
                                          % certs).encode())
    task = {'kvmops.hypervisor.vnc_listen': {'scope': 'domains', 'domains': [guest.name()],
                                             'listen': '0.0.0.0', 'config': str(conf),
                                             'password': 'abcdefgh'}}
    refused, = run_tasks([task], ignore_errors=True)
    assert refused.get('failed') and 'vnc_tls_x509_verify is off' in refused['msg'], refused
    assert 'abcdefgh' not in json.dumps(refused)
    conf.write_bytes(conf.read_bytes() + b'vnc_tls_x509_verify = 1\n')
    os.chmod(os.path.join(certs, 'server-key.pem'), 0o600)
    refused, = run_tasks([task], ignore_errors=True)
    assert refused.get('failed') and 'server-key.pem is not readable by nobody' in \
        refused['msg'], refused
    os.chmod(os.path.join(certs, 'server-key.pem'), 0o640)
    ok, = run_tasks([task], check=True)
    assert ok['changed'] and not ok.get('failed'), ok
    assert guest.XMLDesc(INACTIVE_SECURE) == xml


def test_virt_install_domain_refuses_public_spice_without_tls_and_password(conn, prefix):
    """Against this host's own qemu.conf (spice_tls is off here, as libvirt ships it)."""
    name = prefix + 'spice'
    guest = {'name': name, 'virt_type': 'qemu', 'os_variant': 'linux', 'state': 'present',
             'memory': 128, 'disks': [], 'networks': [],
             'graphics': {'type': 'spice', 'listen': '0.0.0.0', 'password': 'spice-ticket-1'}}
    refused, allowed = run_tasks([
        {'kvmops.hypervisor.virt_install_domain': guest},
        {'kvmops.hypervisor.virt_install_domain': dict(guest, graphics=dict(
            guest['graphics'], allow_insecure=True))},
    ], check=True, ignore_errors=True)
    assert refused.get('failed'), refused
    assert refused['msg'].startswith('Refusing graphics.listen=0.0.0.0: a SPICE console')
    assert 'without TLS (spice_tls is off)' in refused['msg']
    assert 'spice-ticket-1' not in json.dumps(refused)
    assert not allowed.get('failed'), allowed
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(name)
