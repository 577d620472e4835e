"""vnc_listen refuses what it must (no TLS beyond loopback, a host name for an address, a
missing or unparsable qemu.conf, options of the other scope, a password over 8 bytes) and
changes nothing; a password never shows in results or diffs. Against the real libvirtd and
copies of recorded qemu.conf files."""
import json
import os
import stat

from support import paths
from support.ansible_run import run_module, run_tasks
from support.vnc import INACTIVE_SECURE, define_guest, read_bytes


def test_refusals_change_nothing(conn, prefix, image_dir, tiny, tmp_path):
    guest = define_guest(conn, prefix + 'guard', tiny, image_dir)
    before_xml = guest.XMLDesc(INACTIVE_SECURE)
    conf = tmp_path / 'qemu.conf'
    conf.write_bytes(read_bytes(os.path.join(paths.FIXTURES, 'qemu_conf',
                                             '9.0.0-debian12.conf')))
    conf_bytes = conf.read_bytes()
    cfg = str(conf)
    broken = tmp_path / 'broken.conf'
    broken.write_bytes(conf_bytes + b'vnc_listen = "0.0.0.0\n')
    results = run_tasks([
        {'kvmops.hypervisor.vnc_listen': {'config': cfg, 'listen': '0.0.0.0'}},
        {'kvmops.hypervisor.vnc_listen': {'scope': 'domains', 'domains': [guest.name()],
                                          'listen': '0.0.0.0', 'config': cfg}},
        {'kvmops.hypervisor.vnc_listen': {'config': cfg, 'listen': 'vnc.example.com'}},
        {'kvmops.hypervisor.vnc_listen': {'config': str(tmp_path / 'missing.conf')}},
        {'kvmops.hypervisor.vnc_listen': {'scope': 'domains', 'listen': '127.0.0.6',
                                          'domains': [guest.name(), prefix + 'nosuch']}},
        {'kvmops.hypervisor.vnc_listen': {'scope': 'domains', 'domains': [guest.name()],
                                          'port_max': 5950}},
        {'kvmops.hypervisor.vnc_listen': {'config': cfg, 'port_min': 5800}},
        {'kvmops.hypervisor.vnc_listen': {'config': cfg, 'password': ''}},
        {'kvmops.hypervisor.vnc_listen': {'config': str(broken), 'listen': '127.0.0.7'}},
        {'kvmops.hypervisor.vnc_listen': {'config': cfg, 'domains': [guest.name()]}},
        {'kvmops.hypervisor.vnc_listen': {'config': cfg, 'listen': '127.0.0.1', 'tls': True,
                                          'tls_cert_dir': str(tmp_path)}},
    ], ignore_errors=True)
    (insecure_host, insecure_dom, bad_addr, missing, nosuch, host_only, low_port, empty_pw,
     unparsable, domains_in_host_scope, tls_no_certs) = results
    for r in results:
        assert r.get('failed'), r
    assert 'without TLS' in insecure_host['msg'] and 'ssh -L 5901:127.0.0.1:5901' in \
        insecure_host['msg'] and 'allow_insecure' in insecure_host['msg']
    assert 'without TLS' in insecure_dom['msg']
    assert 'not an IP address' in bad_addr['msg']
    assert 'does not exist' in missing['msg'] and 'does not create it' in missing['msg']
    assert prefix + 'nosuch does not exist' in nosuch['msg'] and 'Nothing was changed' in \
        nosuch['msg']
    assert 'only apply host-wide' in host_only['msg']
    assert 'port_min' in low_port['msg']
    assert 'empty' in empty_pw['msg']
    assert 'cannot be parsed' in unparsable['msg'] and 'unterminated string' in unparsable['msg']
    assert 'only applies with scope: domains' in domains_in_host_scope['msg']
    assert 'server-cert.pem' in tls_no_certs['msg'] and str(tmp_path) in tls_no_certs['msg']
    assert broken.read_bytes() == conf_bytes + b'vnc_listen = "0.0.0.0\n'
    assert conf.read_bytes() == conf_bytes
    assert guest.XMLDesc(INACTIVE_SECURE) == before_xml
    assert not (tmp_path / 'missing.conf').exists()


def test_long_password_is_refused_and_a_password_is_hidden(tmp_path):
    """VNC policy (one for every module): more than 8 bytes is an error, nothing written."""
    conf = tmp_path / 'qemu.conf'
    conf.write_bytes(read_bytes(os.path.join(paths.FIXTURES, 'qemu_conf', '4.5.0.conf')))
    os.chmod(str(conf), 0o600)
    args = {'config': str(conf), 'password': 'longer-than-8', 'backup': True}
    res = run_module('vnc_listen', args, diff=True)
    assert res.get('failed') and not res['changed'], res
    assert 'only 8 bytes' in res['msg'], res
    assert 'longer-than-8' not in json.dumps(res)
    assert conf.read_bytes() == read_bytes(os.path.join(paths.FIXTURES, 'qemu_conf', '4.5.0.conf'))
    args['password'] = 'exactly8'
    res = run_module('vnc_listen', args, diff=True)
    assert res['changed'], res
    assert 'exactly8' not in json.dumps(res)
    assert b'\nvnc_password = "exactly8"\n' in conf.read_bytes()
    assert stat.S_IMODE(os.stat(str(conf)).st_mode) == 0o600
    assert os.path.exists(res['backup_file'])
    assert read_bytes(res['backup_file']) == read_bytes(
        os.path.join(paths.FIXTURES, 'qemu_conf', '4.5.0.conf'))
    res = run_module('vnc_listen', args)
    assert not res['changed'], res
