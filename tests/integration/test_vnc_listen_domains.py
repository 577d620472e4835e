"""vnc_listen with scope: domains against the real libvirtd (persistent graphics edits, live
passwords, displays and SSH tunnels), and on libvirt's test driver (test:///<file>) for
addresses nobody may listen on here and for domains: all.

Every address a guest listens on here is inside 127.0.0.0/8. Verification is independent of
the module: libvirt-python, `virsh vncdisplay`, and a TCP connect that reads QEMU's RFB banner.
"""
import json

import libvirt
import pytest

from support.ansible_run import run_module
from support.vnc import INACTIVE_SECURE, define_guest, rfb_banner, vnc_of, vncdisplay


def test_per_guest_listen_and_password(conn, prefix, image_dir, tiny):
    stopped = define_guest(conn, prefix + 'stopped', tiny, image_dir)
    running = define_guest(conn, prefix + 'running', tiny, image_dir,
                           "<graphics type='vnc' autoport='yes' listen='127.0.0.1' "
                           "passwd='oldpw12'/>")
    running.create()
    names = [stopped.name(), running.name()]
    before = {d.name(): d.XMLDesc(INACTIVE_SECURE) for d in (stopped, running)}
    args = {'scope': 'domains', 'domains': names, 'listen': '127.0.0.5',
            'ssh_user': 'ops', 'ssh_host': 'hv1'}

    res = run_module('vnc_listen', args, check=True, diff=True)
    assert res['changed'], res
    assert sorted(res['domains_changed']) == sorted(names)
    assert res['domains_restart_required'] == [running.name()]
    assert {d.name(): d.XMLDesc(INACTIVE_SECURE) for d in (stopped, running)} == before

    res = run_module('vnc_listen', args, diff=True)
    assert res['changed'] and sorted(res['domains_changed']) == sorted(names), res
    assert res['domains_restart_required'] == [running.name()]
    assert not res['daemon_restart_required']
    assert len(res['diff']) == 2 and 'oldpw12' not in json.dumps(res['diff'])
    for d in (stopped, running):
        persistent = vnc_of(d.XMLDesc(INACTIVE_SECURE))
        assert persistent['listen'] == '127.0.0.5'
        assert persistent['listen_el'] == {'type': 'address', 'address': '127.0.0.5'}
    # the running guest still listens where it started (libvirt cannot move it live)
    live = vnc_of(running.XMLDesc(0))
    assert live['listen'] == '127.0.0.1'
    assert rfb_banner('127.0.0.1', live['port']).startswith(b'RFB ')
    assert vnc_of(running.XMLDesc(INACTIVE_SECURE))['passwd'] == 'oldpw12'

    res = run_module('vnc_listen', args, check=True)
    assert not res['changed'] and res['domains_restart_required'] == [running.name()], res
    res = run_module('vnc_listen', args)
    assert not res['changed'], res

    # displays / ssh_tunnels match virsh vncdisplay
    port = int(live['port'])
    mine = [d for d in res['displays'] if d['domain'] in names]
    assert mine == [{'domain': running.name(), 'listen': '127.0.0.1', 'port': port,
                     'display': vncdisplay(running.name()),
                     'ssh_tunnel': 'ssh -L %d:127.0.0.1:%d -N -f ops@hv1' % (port, port)}]
    assert 'ssh -L %d:127.0.0.1:%d -N -f ops@hv1' % (port, port) in res['ssh_tunnels']

    # a password: persistent for both, live for the guest that started with one
    args['password'] = 'newpw123'
    res = run_module('vnc_listen', args)
    assert res['changed'] and sorted(res['domains_changed']) == sorted(names), res
    assert 'newpw123' not in json.dumps(res)
    assert vnc_of(running.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))['passwd'] == 'newpw123'
    for d in (stopped, running):
        assert vnc_of(d.XMLDesc(INACTIVE_SECURE))['passwd'] == 'newpw123'
    res = run_module('vnc_listen', args)
    assert not res['changed'], res

    # the stopped guest, started now, listens on its own address
    stopped.create()
    live = vnc_of(stopped.XMLDesc(0))
    assert live['listen'] == '127.0.0.5'
    assert rfb_banner('127.0.0.5', live['port']).startswith(b'RFB ')
    stopped.destroy()
    running.destroy()


TEST_NODE = """<node>
  <domain type='test'>
    <name>{name}</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <devices>
      <graphics type='vnc' port='{port}' autoport='no' listen='{listen}'/>
    </devices>
  </domain>
</node>
"""


@pytest.mark.parametrize('listen', ['0.0.0.0', '::', '192.0.2.5'])
def test_displays_match_virsh_for_addresses_nobody_listens_on(tmp_path, listen):
    """libvirt's test driver reports these guests as running but starts nothing."""
    node = tmp_path / 'node.xml'
    node.write_text(TEST_NODE.format(name='vnc-probe', port=5907, listen=listen))
    uri = 'test://' + str(node)
    conf = tmp_path / 'qemu.conf'
    conf.write_text('')
    res = run_module('vnc_listen', {'uri': uri, 'config': str(conf), 'ssh_host': 'hv1'},
                     check=True)
    assert res['displays'] == [{
        'domain': 'vnc-probe', 'listen': listen, 'port': 5907,
        'display': vncdisplay('vnc-probe', uri),
        'ssh_tunnel': 'ssh -L 5907:%s:5907 -N -f hv1'
                      % {'0.0.0.0': '127.0.0.1', '::': '[::1]'}.get(listen, listen)}]


ALL_NODE = """<node>
  <domain type='test'>
    <name>with-vnc-a</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <devices><graphics type='vnc' port='5911' autoport='no' listen='127.0.0.1'/></devices>
  </domain>
  <domain type='test'>
    <name>with-vnc-b</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <devices><graphics type='vnc' port='5912' autoport='no'/></devices>
  </domain>
  <domain type='test'>
    <name>headless</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
  </domain>
</node>
"""


def test_all_domains_on_the_test_driver(tmp_path):
    """domains: all, run where it cannot touch anyone's guests: a private test driver node."""
    node = tmp_path / 'node.xml'
    node.write_text(ALL_NODE)
    conf = tmp_path / 'qemu.conf'
    conf.write_text('')
    args = {'uri': 'test://' + str(node), 'config': str(conf), 'scope': 'domains',
            'domains': 'all', 'listen': '127.0.0.9'}
    res = run_module('vnc_listen', args, diff=True)
    assert res['changed'], res
    assert res['domains_changed'] == ['with-vnc-a', 'with-vnc-b']
    assert res['domains_skipped'] == ['headless']
    # running guests keep their address until restarted
    assert res['domains_restart_required'] == ['with-vnc-a', 'with-vnc-b']
    assert [d['before_header'] for d in res['diff']] == [
        'with-vnc-a (persistent VNC graphics)', 'with-vnc-b (persistent VNC graphics)']
    assert 'listen="127.0.0.9"' in res['diff'][0]['after']
    # a named guest without VNC is an error, not a skip
    res = run_module('vnc_listen', dict(args, domains=['headless']))
    assert res.get('failed') and 'has no <graphics' in res['msg'], res
