"""The public-console guard of a guest's graphics option (VNC and SPICE), against the real
qemu.conf parser and real certificate files with real owners and modes (issue 26: "What a
public console needs"). QEMU's user is `nobody` (set in each qemu.conf copy) so that the
readability checks mean the same on every host. Every case here was accepted on main before
the rule was tightened, except the loopback/allow_insecure ones."""
import os
import shutil

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc import guard as G
from support.console_certs import QEMU_USER_CONF as QEMU_USER, server_cert_dir
PUBLIC_VNC = {'type': 'vnc', 'listen': '0.0.0.0'}


@pytest.fixture
def certs():
    with server_cert_dir() as cert_dir:
        yield cert_dir


def _conf(tmp_path, text):
    conf = tmp_path / 'qemu.conf'
    conf.write_text(QEMU_USER + text)
    return str(conf)


def test_loopback_and_unset_listen_pass(tmp_path):
    conf = str(tmp_path / 'missing.conf')
    for g in (None, {'type': 'none'}, {'type': 'vnc', 'listen': None},
              {'type': 'vnc', 'listen': '127.0.0.1'}, {'type': 'vnc', 'listen': '::1'},
              {'type': 'vnc', 'listen': '::ffff:127.0.0.1'}, {'type': 'spice', 'listen': None},
              {'type': 'spice', 'listen': '127.0.0.3'}):
        assert G.public_vnc_error(g, conf_path=conf) is None, g


def test_vnc_without_tls_is_refused_unless_allowed(tmp_path):
    conf = _conf(tmp_path, '# vnc_tls = 1\nvnc_listen = "127.0.0.1"\n')
    msg = G.public_vnc_error(PUBLIC_VNC, conf_path=conf)
    assert msg.startswith('Refusing graphics.listen=0.0.0.0: ')
    assert 'without TLS (vnc_tls is off)' in msg and 'graphics.allow_insecure' in msg
    assert G.public_vnc_error(PUBLIC_VNC, allow_insecure=True, conf_path=conf) is None


def test_vnc_tls_without_verify_is_refused_even_with_a_password(tmp_path, certs):
    conf = _conf(tmp_path, 'vnc_tls = 1\nvnc_tls_x509_cert_dir = "%s"\nvnc_password = "abc"\n'
                 % certs)
    msg = G.public_vnc_error(dict(PUBLIC_VNC, password='abcdefgh'), conf_path=conf)
    assert 'vnc_tls_x509_verify is off' in msg and 'set vnc_tls_x509_verify = 1' in msg
    assert 'abcdefgh' not in msg
    # default_tls_x509_verify is what libvirt uses when vnc_tls_x509_verify is unset
    conf = _conf(tmp_path, 'vnc_tls = 1\nvnc_tls_x509_cert_dir = "%s"\n'
                 'default_tls_x509_verify = 1\n' % certs)
    assert G.public_vnc_error(PUBLIC_VNC, conf_path=conf) is None


def test_vnc_tls_with_verify_and_usable_certificates_passes(tmp_path, certs):
    conf = _conf(tmp_path, 'vnc_tls = 1\nvnc_tls_x509_verify = 1\nvnc_tls_x509_cert_dir = '
                 '"%s"\n' % certs)
    assert G.public_vnc_error(PUBLIC_VNC, conf_path=conf) is None
    assert G.public_vnc_error({'type': 'vnc', 'listen': '::'}, conf_path=conf) is None


@pytest.mark.parametrize('damage, expected', [
    (lambda d: os.unlink(os.path.join(d, 'server-cert.pem')), 'server-cert.pem is missing'),
    (lambda d: open(os.path.join(d, 'server-key.pem'), 'w').close(), 'server-key.pem is empty'),
    (lambda d: os.chmod(os.path.join(d, 'server-key.pem'), 0o600),
     'server-key.pem is not readable by nobody (mode 0600'),
    (lambda d: shutil.chown(os.path.join(d, 'ca-cert.pem'), 'root', 'root') or
     os.chmod(os.path.join(d, 'ca-cert.pem'), 0o640), 'ca-cert.pem is not readable by nobody'),
    (lambda d: os.chmod(d, 0o700), 'nobody cannot enter %s (mode 0700)'),
    (lambda d: (os.unlink(os.path.join(d, 'ca-cert.pem')),
                os.mkdir(os.path.join(d, 'ca-cert.pem'))), 'ca-cert.pem is not a regular file'),
    (shutil.rmtree, 'the certificate directory %s does not exist'),
])
def test_vnc_tls_whose_certificates_qemu_cannot_use_is_refused(
        tmp_path, certs, damage, expected):
    conf = _conf(tmp_path, 'vnc_tls = 1\nvnc_tls_x509_verify = 1\nvnc_tls_x509_cert_dir = '
                 '"%s"\n' % certs)
    damage(certs)
    msg = G.public_vnc_error(PUBLIC_VNC, conf_path=conf)
    assert msg and (expected % certs if '%s' in expected else expected) in msg, msg
    assert 'readable by QEMU\'s user (the kvmops.hypervisor.libvirt_pki role does it)' in msg


def test_vnc_cert_dir_defaults_as_libvirt_does(tmp_path, certs):
    """No vnc_tls_x509_cert_dir: /etc/pki/libvirt-vnc when it exists, else
    default_tls_x509_cert_dir (here the made directory)."""
    conf = _conf(tmp_path, 'vnc_tls = 1\nvnc_tls_x509_verify = 1\n'
                 'default_tls_x509_cert_dir = "%s"\n' % certs)
    if os.path.isdir('/etc/pki/libvirt-vnc'):
        pytest.skip('this host has /etc/pki/libvirt-vnc, which libvirt would use instead')
    assert G.public_vnc_error(PUBLIC_VNC, conf_path=conf) is None


def test_spice_beyond_loopback_needs_tls_and_a_password(tmp_path, certs):
    spice = {'type': 'spice', 'listen': '0.0.0.0'}
    conf = _conf(tmp_path, '')
    msg = G.public_vnc_error(spice, conf_path=conf)
    assert msg.startswith('Refusing graphics.listen=0.0.0.0: a SPICE console')
    assert 'without TLS (spice_tls is off)' in msg and 'there is no SPICE password' in msg
    conf = _conf(tmp_path, 'spice_tls = 1\nspice_tls_x509_cert_dir = "%s"\n' % certs)
    msg = G.public_vnc_error(spice, conf_path=conf)
    assert 'spice_tls' not in msg and 'there is no SPICE password' in msg
    assert G.public_vnc_error(dict(spice, password='a-long-spice-ticket'), conf_path=conf) is None
    conf = _conf(tmp_path, 'spice_tls = 1\nspice_tls_x509_cert_dir = "%s"\n'
                 'spice_password = "secret-ticket"\n' % certs)
    assert G.public_vnc_error(spice, conf_path=conf) is None
    os.chmod(os.path.join(certs, 'server-key.pem'), 0o600)
    assert 'server-key.pem is not readable by nobody' in G.public_vnc_error(spice,
                                                                            conf_path=conf)
    assert G.public_vnc_error(spice, allow_insecure=True, conf_path=conf) is None


def test_spice_following_a_public_spice_listen_is_checked(tmp_path):
    conf = _conf(tmp_path, 'spice_listen = "0.0.0.0"\n')
    msg = G.public_vnc_error({'type': 'spice', 'listen': None}, conf_path=conf)
    assert msg.startswith('Refusing SPICE graphics without a listen of their own: the guest '
                          'follows spice_listen = 0.0.0.0 in %s' % conf)


def test_unparsable_address_and_conf_are_clear_errors(tmp_path):
    msg = G.public_vnc_error({'type': 'vnc', 'listen': '1.2.3'},
                             conf_path=str(tmp_path / 'x'))
    assert msg.startswith('graphics.listen:') and 'not an IP address' in msg
    conf = _conf(tmp_path, 'vnc_tls = "broken\n')
    msg = G.public_vnc_error(PUBLIC_VNC, conf_path=conf)
    assert 'cannot be parsed' in msg and 'Fix that line first' in msg
