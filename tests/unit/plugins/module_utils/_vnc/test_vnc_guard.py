"""The public-VNC guard for a guest's graphics listen (pure; qemu.conf copies in tmp_path)."""
from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc import guard as G


def test_loopback_and_unset_listen_pass(tmp_path):
    conf = str(tmp_path / 'missing.conf')
    for g in (None, {'type': 'none'}, {'type': 'vnc', 'listen': None},
              {'type': 'vnc', 'listen': '127.0.0.1'}, {'type': 'vnc', 'listen': '::1'},
              {'type': 'vnc', 'listen': '::ffff:127.0.0.1'}, {'type': 'spice', 'listen': '0.0.0.0'}):
        assert G.public_vnc_error(g, conf_path=conf) is None, g


def test_public_listen_needs_tls_or_allow_insecure(tmp_path):
    conf = tmp_path / 'qemu.conf'
    conf.write_text('# vnc_tls = 1\nvnc_listen = "127.0.0.1"\n')
    g = {'type': 'vnc', 'listen': '0.0.0.0'}
    msg = G.public_vnc_error(g, conf_path=str(conf))
    assert 'Refusing graphics.listen=0.0.0.0' in msg and 'allow_insecure' in msg
    assert G.public_vnc_error(g, allow_insecure=True, conf_path=str(conf)) is None
    conf.write_text('vnc_tls = 1\n')
    assert G.public_vnc_error(g, conf_path=str(conf)) is None
    conf.write_text('vnc_tls = "broken\n')  # unparsable: TLS is not assumed
    assert G.public_vnc_error(g, conf_path=str(conf))


def test_unparsable_address_is_a_clear_error(tmp_path):
    msg = G.public_vnc_error({'type': 'vnc', 'listen': '1.2.3'},
                             conf_path=str(tmp_path / 'x'))
    assert msg.startswith('graphics.listen:') and 'not an IP address' in msg
