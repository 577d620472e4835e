"""vnc_listen's manager without Ansible: host scope on a copy of a shipped qemu.conf, domains
scope on libvirt's test driver with a private node file (nothing real is touched)."""
import os
import shutil

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc.manager import VncListenManager

libvirt = pytest.importorskip('libvirt')

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'fixtures', 'qemu_conf')
NODE = """<node>
  <domain type='test'><name>with-vnc</name><memory>65536</memory><os><type>hvm</type></os>
    <devices><graphics type='vnc' port='5911' autoport='no' listen='127.0.0.1'/></devices>
  </domain>
  <domain type='test'><name>headless</name><memory>65536</memory><os><type>hvm</type></os>
  </domain>
</node>
"""


def params(**kw):
    p = dict(uri='test:///default', scope='host', listen='127.0.0.1', domains=None, tls=None,
             tls_verify=True, tls_cert_dir=None, password=None, auto_unix_socket=None,
             port_min=None, port_max=None, allow_insecure=False, config=None, backup=False,
             ssh_user=None, ssh_host='hv1')
    p.update(kw)
    return p


class Writer(object):
    def __init__(self):
        self.calls = []

    def __call__(self, path, text, backup):
        self.calls.append(path)
        with open(path, 'w') as f:
            f.write(text)
        return None


@pytest.fixture
def conf(tmp_path):
    path = str(tmp_path / 'qemu.conf')
    shutil.copy(os.path.join(FIXTURES, '9.0.0-debian12.conf'), path)
    return path


def run(p, check_mode=False, diff_mode=False):
    warnings, writer = [], Writer()
    m = VncListenManager(p, check_mode=check_mode, diff_mode=diff_mode, warn=warnings.append,
                         write_config=writer)
    return m.run(), warnings, writer


def test_host_scope_check_mode_real_and_again(conf):
    with open(conf) as f:
        before = f.read()
    res, dummy, writer = run(params(config=conf, listen='127.0.0.2'), check_mode=True,
                             diff_mode=True)
    assert res['changed'] and res['daemon_restart_required'] and writer.calls == []
    assert 'vnc_listen = "127.0.0.2"' in res['diff'][0]['after']
    with open(conf) as f:
        assert f.read() == before
    res, dummy, writer = run(params(config=conf, listen='127.0.0.2'))
    assert res['changed'] and writer.calls == [conf]
    res, dummy, writer = run(params(config=conf, listen='127.0.0.2'))
    assert not res['changed'] and writer.calls == []


def test_host_scope_refusals_raise_with_the_result_fields(conf, tmp_path):
    for bad in (dict(listen='0.0.0.0'), dict(password='123456789'), dict(domains=['x']),
                dict(config=str(tmp_path / 'missing.conf'))):
        with pytest.raises(KvmopsError) as exc:
            run(params(**dict(dict(config=conf), **bad)))
        assert exc.value.msg
    with pytest.raises(KvmopsError) as exc:
        run(params(config=conf, listen='0.0.0.0'))
    assert exc.value.result['changed'] is False and exc.value.result['config'] == conf


def test_domains_scope_on_the_test_driver(tmp_path, conf):
    node = tmp_path / 'node.xml'
    node.write_text(NODE)
    p = params(uri='test://' + str(node), config=conf, scope='domains', domains=['all'],
               listen='127.0.0.9', password='pw')
    res, dummy, dummy = run(p, check_mode=True, diff_mode=True)
    assert res['changed'] and res['domains_changed'] == ['with-vnc']
    assert res['domains_skipped'] == ['headless']
    assert 'pw' not in res['diff'][0]['after'].replace('passwd', '')
    res, dummy, dummy = run(dict(p, domains=['with-vnc']))
    assert res['domains_restart_required'] == ['with-vnc']
    assert res['displays'][0]['ssh_tunnel'] == 'ssh -L 5911:127.0.0.1:5911 -N -f hv1'
    with pytest.raises(KvmopsError, match='has no <graphics'):
        run(dict(p, domains=['headless']))
    with pytest.raises(KvmopsError, match='only apply host-wide'):
        run(dict(p, port_max=5950))
