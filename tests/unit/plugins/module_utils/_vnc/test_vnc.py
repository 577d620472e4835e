"""Unit tests of the VNC logic: addresses, the insecure guard, the qemu.conf plan, per-guest
graphics editing, displays and SSH tunnels. Pure functions; file-system checks take injected
exists/isdir callables (no mocks of libvirt). What `virsh vncdisplay` prints was observed on
this machine with libvirt 9.0 (test driver); the integration tests compare with it live."""
import os

import pytest
from lxml import etree

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as _qemu_conf
from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc import listen as _vnc

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'fixtures', 'qemu_conf')


def _fixture(name='9.0.0-debian12.conf'):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def _params(**kw):
    p = dict(listen='127.0.0.1', tls=None, tls_verify=True, tls_cert_dir=None, password=None,
             auto_unix_socket=None, port_min=None, port_max=None, allow_insecure=False,
             ssh_user=None, ssh_host=None)
    p.update(kw)
    return p


def _nothing_exists(path):
    return False


def _everything_exists(path):
    return True


ROOT_QEMU = {'user': 'root', 'uid': 0, 'gids': {0}}


def _good_stat(path):
    """Every path a directory or a non-empty file (the certificates are _libvirt/graphics'
    tests, with real files)."""
    mode = 0o40755 if not path.endswith('.pem') else 0o100644
    return os.stat_result((mode, 0, 0, 1, 0, 0, 10, 0, 0, 0))


def _no_file(path):
    raise OSError(2, 'No such file or directory', path)


# --- addresses and passwords ---------------------------------------------------------------

@pytest.mark.parametrize('addr', ['127.0.0.1', '127.0.0.2', '0.0.0.0', '::', '::1', '192.0.2.7',
                                  'fe80::1'])
def test_ip_literals_are_accepted(addr):
    assert str(_vnc.parse_listen(addr)) == addr


@pytest.mark.parametrize('addr, hint', [
    ('localhost', 'not an IP address'), ('hv1.example.com', 'host names'),
    ('[::1]', 'without brackets'), ('', 'empty'), ('127.0.0.256', 'not an IP address'),
    ('0.0.0.0:5900', 'not an IP address'),
])
def test_bad_addresses_say_what_to_write(addr, hint):
    with pytest.raises(_vnc.VncError) as exc:
        _vnc.parse_listen(addr)
    assert hint in str(exc.value)


@pytest.mark.parametrize('addr, loopback', [
    ('127.0.0.1', True), ('127.255.0.9', True), ('::1', True), ('::ffff:127.0.0.1', True),
    ('0.0.0.0', False), ('::', False), ('10.0.0.1', False), ('128.0.0.1', False),
])
def test_loopback(addr, loopback):
    assert _vnc.is_loopback(addr) is loopback


# One VNC password policy for vnc_listen and virt_install_domain (_libvirt/graphics): more
# than 8 bytes is an error (libvirt refuses such a passwd in a domain definition).
@pytest.mark.parametrize('password, refused', [('12345678', False), ('123456789', True),
                                               (u'\u00e4\u00f6\u00fc\u00e4\u00f6', True),
                                               (u'\u00e4\u00f6\u00fc\u00e4', False)])
def test_password_over_8_bytes_is_refused(password, refused):
    errors, warnings = _vnc.password_checks(password)
    assert warnings == []
    assert bool(errors) is refused
    if refused:
        assert 'only 8 bytes' in errors[0] and 'at most 8 bytes' in errors[0]


def test_empty_password_is_an_error():
    errors, dummy = _vnc.password_checks('')
    assert errors and 'empty' in errors[0]


# --- host plan ---------------------------------------------------------------------------------

def test_defaults_on_a_pristine_file_write_nothing():
    plan = _vnc.plan_host(_fixture(), _params(), stat_fn=_no_file, ident=ROOT_QEMU)
    assert plan['settings'] == [] and plan['errors'] == []


def test_public_listen_without_tls_is_refused_with_the_tunnel_alternative():
    plan = _vnc.plan_host(_fixture(), _params(listen='0.0.0.0', ssh_user='ops', ssh_host='hv1'))
    assert len(plan['errors']) == 1
    msg = plan['errors'][0]
    assert 'without TLS' in msg and 'allow_insecure' in msg
    assert 'ssh -L 5901:127.0.0.1:5901 -N -f ops@hv1' in msg


def test_public_listen_allowed_when_insecure_is_accepted_and_warns_about_port_range():
    plan = _vnc.plan_host(_fixture(), _params(listen='0.0.0.0', allow_insecure=True))
    assert plan['errors'] == []
    assert plan['settings'] == [('vnc_listen', '0.0.0.0')]
    assert any('port_max' in w for w in plan['warnings'])
    plan = _vnc.plan_host(_fixture(), _params(listen='0.0.0.0', allow_insecure=True,
                                              port_max=5950))
    assert not any('port_max' in w for w in plan['warnings'])


def test_public_listen_with_tls_is_fine_and_writes_verify():
    plan = _vnc.plan_host(_fixture(), _params(listen='0.0.0.0', tls=True),
                          stat_fn=_good_stat, ident=ROOT_QEMU, isdir=_everything_exists)
    assert plan['errors'] == [] and plan['check_warnings'] == []
    assert plan['settings'] == [('vnc_listen', '0.0.0.0'), ('vnc_tls', True),
                                ('vnc_tls_x509_verify', True)]


def test_existing_tls_in_the_file_counts_for_the_guard_only_with_verify():
    text = _fixture() + 'vnc_tls = 1\n'
    plan = _vnc.plan_host(text, _params(listen='192.0.2.1'), stat_fn=_good_stat, ident=ROOT_QEMU)
    assert len(plan['errors']) == 1 and 'vnc_tls_x509_verify is off' in plan['errors'][0]
    text = _fixture() + 'vnc_tls = 1\nvnc_tls_x509_verify = 1\n'
    plan = _vnc.plan_host(text, _params(listen='192.0.2.1'), stat_fn=_good_stat, ident=ROOT_QEMU)
    assert plan['errors'] == []


def test_tls_without_certificates_is_flagged_and_missing_cert_dir_is_an_error():
    plan = _vnc.plan_host(_fixture(), _params(tls=True), stat_fn=_no_file, ident=ROOT_QEMU,
                          isdir=_nothing_exists)
    assert plan['errors'] == []
    assert 'server-cert.pem' in plan['check_warnings'][0]
    assert '/etc/pki/qemu' in plan['check_warnings'][0]
    plan = _vnc.plan_host(_fixture(), _params(tls=True, tls_cert_dir='/nope'),
                          stat_fn=_no_file, ident=ROOT_QEMU, isdir=_nothing_exists)
    assert 'tls_cert_dir /nope does not exist' in plan['errors'][0]


def test_tls_without_verify_warns():
    plan = _vnc.plan_host(_fixture(), _params(tls=True, tls_verify=False),
                          stat_fn=_good_stat, ident=ROOT_QEMU)
    # 0 is libvirt's default when default_tls_x509_verify is unset: nothing to write for it
    assert plan['settings'] == [('vnc_tls', True)]
    text = _fixture() + 'default_tls_x509_verify = 1\n'
    plan = _vnc.plan_host(text, _params(tls=True, tls_verify=False), stat_fn=_good_stat, ident=ROOT_QEMU)
    assert ('vnc_tls_x509_verify', False) in plan['settings']
    assert any('verification' in w for w in plan['warnings'])


@pytest.mark.parametrize('kw, text_extra, needle', [
    (dict(port_min=5800), '', 'between 5900 and 65535'),
    (dict(port_max=70000), '', 'between 5900 and 65535'),
    (dict(port_min=6000, port_max=5950), '', 'must not be greater'),
    (dict(port_min=6000), 'remote_display_port_max = 5950\n', 'must not be greater'),
])
def test_port_range_checked_like_libvirt(kw, text_extra, needle):
    plan = _vnc.plan_host(_fixture() + text_extra, _params(**kw))
    assert any(needle in e for e in plan['errors']), plan['errors']


def test_port_range_and_password_and_socket():
    plan = _vnc.plan_host(_fixture(), _params(port_min=5900, port_max=5950, password='abc',
                                              auto_unix_socket=True))
    assert plan['errors'] == []
    # 5900 is libvirt's default: not written
    assert plan['settings'] == [('vnc_password', 'abc'), ('vnc_auto_unix_socket', True),
                                ('remote_display_port_max', 5950)]
    assert any('precedence over vnc_listen' in w for w in plan['warnings'])


def test_password_that_cannot_be_written_is_an_error():
    plan = _vnc.plan_host(_fixture(), _params(password='a\'b"c'))
    assert any('quote' in e for e in plan['errors'])


def test_a_bad_existing_value_libvirt_would_reject_is_reported():
    plan = _vnc.plan_host(_fixture() + 'vnc_tls = "yes"\n', _params())
    assert any('vnc_tls' in e for e in plan['errors'])
    # ... unless this run replaces it
    plan = _vnc.plan_host(_fixture() + 'vnc_tls = "yes"\n', _params(tls=False))
    assert plan['errors'] == [] and plan['settings'] == [('vnc_tls', False)]


def test_plan_is_idempotent_after_the_edit():
    params = _params(listen='127.0.0.2', password='pw', port_max=5950, tls=False)
    text = _fixture()
    plan = _vnc.plan_host(text, params)
    new, dummy = _qemu_conf.edit(text, plan['settings'])
    assert _vnc.plan_host(new, params)['settings'] == []
    assert plan['state']['vnc_listen'] == '127.0.0.2'


def test_effective_cert_dir_mirrors_libvirt_defaults():
    entries = _qemu_conf.parse('default_tls_x509_cert_dir = "/srv/pki"\n')
    assert _vnc.effective_cert_dir(entries, _nothing_exists) == '/srv/pki'
    assert _vnc.effective_cert_dir(entries, _everything_exists) == '/etc/pki/libvirt-vnc'
    assert _vnc.effective_cert_dir([], _nothing_exists) == '/etc/pki/qemu'
    entries = _qemu_conf.parse('vnc_tls_x509_cert_dir = "/x"\n')
    assert _vnc.effective_cert_dir(entries, _everything_exists) == '/x'


# --- per-guest graphics --------------------------------------------------------------------------

DOMAIN = """<domain type='qemu'>
  <name>g1</name>
  <memory unit='KiB'>131072</memory>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <graphics type='vnc' port='-1' autoport='yes'%s>
      %s
    </graphics>
    <video>
      <model type='cirrus' vram='16384' heads='1' primary='yes'/>
    </video>
  </devices>
</domain>
"""


def _without_graphics(xml):
    root = etree.fromstring(xml.encode())
    for g in root.findall('./devices/graphics'):
        g.getparent().remove(g)
    return etree.tostring(root, method='c14n')


def test_guest_following_host_gets_its_own_address_and_nothing_else_changes():
    xml = DOMAIN % ('', "<listen type='address'/>")
    plan = _vnc.plan_domain(xml, listen='127.0.0.2')
    assert plan['has_vnc'] and plan['follows_host']
    assert plan['changes'] == ['listen']
    g = _vnc.vnc_graphics(etree.fromstring(plan['new_xml'].encode()))[0]
    assert g.get('listen') == '127.0.0.2'
    listens = [(el.get('type'), el.get('address')) for el in g.findall('listen')]
    assert listens == [('address', '127.0.0.2')]
    assert _without_graphics(plan['new_xml']) == _without_graphics(xml)
    # second run: nothing to do
    assert _vnc.plan_domain(plan['new_xml'], listen='127.0.0.2')['changes'] == []


def test_guest_with_its_own_address_is_unchanged_or_changed():
    xml = DOMAIN % (" listen='127.0.0.1'", "<listen type='address' address='127.0.0.1'/>")
    assert _vnc.plan_domain(xml, listen='127.0.0.1')['new_xml'] is None
    plan = _vnc.plan_domain(xml, listen='::1')
    assert plan['changes'] == ['listen'] and not plan['follows_host']
    assert "listen=\"::1\"" in plan['after'] and "127.0.0.1" in plan['before']


def test_socket_and_extra_listens_become_one_address():
    xml = DOMAIN % (" socket='/tmp/v.sock'",
                    "<listen type='socket' socket='/tmp/v.sock'/>\n      <listen type='none'/>")
    plan = _vnc.plan_domain(xml, listen='127.0.0.3')
    g = _vnc.vnc_graphics(etree.fromstring(plan['new_xml'].encode()))[0]
    assert g.get('socket') is None
    listens = [dict(el.attrib) for el in g.findall('listen')]
    assert listens == [{'type': 'address', 'address': '127.0.0.3'}]


def test_graphics_without_listen_child_and_without_port():
    xml = DOMAIN.replace(" port='-1' autoport='yes'", '') % ('', '')
    plan = _vnc.plan_domain(xml, listen='127.0.0.4')
    g = _vnc.vnc_graphics(etree.fromstring(plan['new_xml'].encode()))[0]
    assert g.get('autoport') == 'yes'
    assert g.find('listen').get('address') == '127.0.0.4'


def test_password_is_set_and_masked_in_before_and_after():
    xml = DOMAIN % (" passwd='oldsecret'", "<listen type='address'/>")
    plan = _vnc.plan_domain(xml, password='newsecret')
    assert plan['changes'] == ['password']
    assert 'oldsecret' not in plan['before'] and 'newsecret' not in plan['after']
    assert _vnc.MASK in plan['after']
    assert "passwd=\"newsecret\"" in plan['new_xml']
    assert _vnc.plan_domain(plan['new_xml'], password='newsecret')['changes'] == []


def test_guest_without_vnc():
    xml = DOMAIN.replace("type='vnc'", "type='spice'") % ('', '')
    plan = _vnc.plan_domain(xml, listen='127.0.0.1')
    assert not plan['has_vnc'] and plan['new_xml'] is None


def test_live_password_needs_a_password_at_start():
    live = DOMAIN % (" listen='127.0.0.1' passwd='a'", "<listen type='address' address='127.0.0.1'/>")
    assert _vnc.live_has_password(live)
    assert _vnc.live_password_xml(live, 'a') is None
    upd = etree.fromstring(_vnc.live_password_xml(live, 'b').encode())
    assert upd.tag == 'graphics' and upd.get('passwd') == 'b'
    assert not _vnc.live_has_password(DOMAIN % ('', ''))


# --- displays and tunnels --------------------------------------------------------------------------

@pytest.mark.parametrize('listen, expected', [
    # observed with `virsh vncdisplay` (libvirt 9.0) for port 5907
    ('0.0.0.0', ':7'), ('::', ':::7'), ('::1', '::1:7'), ('192.0.2.5', '192.0.2.5:7'),
    ('127.0.0.2', '127.0.0.2:7'), (None, ':7'),
])
def test_display_string_like_virsh_vncdisplay(listen, expected):
    assert _vnc.display_string(listen, 5907) == expected


@pytest.mark.parametrize('listen, user, host, expected', [
    ('127.0.0.1', 'user', 'host', 'ssh -L 5901:127.0.0.1:5901 -N -f user@host'),
    ('0.0.0.0', 'ops', 'hv1.example.com', 'ssh -L 5901:127.0.0.1:5901 -N -f ops@hv1.example.com'),
    ('::', None, 'hv1', 'ssh -L 5901:[::1]:5901 -N -f hv1'),
    ('::1', None, 'hv1', 'ssh -L 5901:[::1]:5901 -N -f hv1'),
    ('192.0.2.5', 'u', 'h', 'ssh -L 5901:192.0.2.5:5901 -N -f u@h'),
])
def test_ssh_tunnel_command(listen, user, host, expected):
    assert _vnc.ssh_tunnel_command(listen, 5901, user, host) == expected


def test_displays_from_live_xml():
    live = DOMAIN.replace("port='-1'", "port='5903'") % (
        " listen='127.0.0.2'", "<listen type='address' address='127.0.0.2'/>")
    assert _vnc.displays_from_live_xml('g1', live, 'me', 'hv') == [{
        'domain': 'g1', 'listen': '127.0.0.2', 'port': 5903, 'display': '127.0.0.2:3',
        'ssh_tunnel': 'ssh -L 5903:127.0.0.2:5903 -N -f me@hv'}]
    sock = DOMAIN % (" socket='/x'", "<listen type='socket' socket='/x'/>")
    assert _vnc.displays_from_live_xml('g1', sock) == []
    assert _vnc.live_listen(live) == ('address', '127.0.0.2')
