"""Integration tests of kvmops.hypervisor.vnc_listen against the real libvirtd.

Every address a guest listens on here is inside 127.0.0.0/8. Non-loopback addresses are only
exercised through libvirt's test driver (test:///<file>), where nothing listens at all.
Verification is independent of the module: libvirt-python, the file's bytes, `virsh
vncdisplay`, and a TCP connect that reads QEMU's RFB banner.
"""
import difflib
import json
import os
import socket
import stat
import subprocess
import tempfile
import time

import libvirt
import pytest

from support import paths
from support.ansible_run import run_module, run_playbook
from support.libvirt_helpers import tiny_guest_xml

QEMU_CONF = '/etc/libvirt/qemu.conf'
INACTIVE_SECURE = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE


def define_guest(conn, name, tiny, image_dir, graphics="<graphics type='vnc' autoport='yes'/>"):
    log = os.path.join(image_dir, name + '.log')
    return conn.defineXML(tiny_guest_xml(name, tiny, log, memory=128, devices=graphics))


def vnc_of(xml):
    """(listen attribute, port, passwd) of the first VNC graphics, read with lxml directly."""
    from lxml import etree
    g = etree.fromstring(xml.encode()).find("./devices/graphics[@type='vnc']")
    listen = g.find('listen')
    return {'listen': g.get('listen'), 'port': g.get('port'), 'passwd': g.get('passwd'),
            'listen_el': None if listen is None else dict(listen.attrib)}


def rfb_banner(address, port):
    with socket.create_connection((address, int(port)), timeout=10) as s:
        return s.recv(12)


def vncdisplay(name, uri=paths.URI):
    out = subprocess.run(['virsh', '-c', uri, 'vncdisplay', name], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, check=True)
    return out.stdout.strip()


def wait_for_libvirtd(timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(['virsh', '-c', paths.URI, 'version'], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError('libvirtd did not answer within %ss' % timeout)


def restart_libvirtd():
    subprocess.run(['service', 'libvirtd', 'restart'], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    wait_for_libvirtd()


def read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def run_tasks(tasks, check=False, diff=False):
    """Run several module tasks in one ansible-playbook (each may fail); return their results."""
    play = [{'hosts': 'localhost', 'gather_facts': False,
             'tasks': [dict(t, name='t%d' % i, ignore_errors=True) for i, t in enumerate(tasks)]}]
    fd, path = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump(play, f)
    try:
        doc = run_playbook(path, check=check, diff=diff)
    finally:
        os.unlink(path)
    return [t['hosts']['localhost'] for t in doc['plays'][0]['tasks']]


@pytest.fixture
def system_qemu_conf(daemon_exclusive):
    """Exclusive use of /etc/libvirt/qemu.conf: its original bytes come back at the end, and
    libvirtd is restarted again if a test restarted it on an edited file."""
    original = read_bytes(QEMU_CONF)
    st = os.stat(QEMU_CONF)
    state = {'restarted': False}

    def restart():
        state['restarted'] = True
        restart_libvirtd()

    yield {'original': original, 'stat': st, 'restart': restart}
    if read_bytes(QEMU_CONF) != original:
        with open(QEMU_CONF, 'wb') as f:  # in place: owner, mode and context stay
            f.write(original)
        os.chown(QEMU_CONF, st.st_uid, st.st_gid)
        os.chmod(QEMU_CONF, stat.S_IMODE(st.st_mode))
        restart_libvirtd()
    elif state['restarted']:
        restart_libvirtd()


def test_host_wide_listen_127_0_0_2(conn, prefix, image_dir, tiny, system_qemu_conf):
    original = system_qemu_conf['original']
    name = prefix + 'host'
    dom = define_guest(conn, name, tiny, image_dir)
    args = {'listen': '127.0.0.2', 'ssh_user': 'ops', 'ssh_host': 'hv1'}

    # check mode: would change, writes nothing
    res = run_module('vnc_listen', args, check=True, diff=True)
    assert res['changed'] and res['daemon_restart_required'], res
    assert read_bytes(QEMU_CONF) == original

    # real, with diff
    res = run_module('vnc_listen', args, diff=True)
    assert res['changed'] and res['daemon_restart_required'], res
    assert res['config_changes'][0]['key'] == 'vnc_listen'
    now = read_bytes(QEMU_CONF)
    diff = [line for line in difflib.unified_diff(original.decode().splitlines(),
                                                  now.decode().splitlines(), lineterm='', n=0)
            if not line.startswith(('---', '+++', '@@'))]
    assert diff == ['+vnc_listen = "127.0.0.2"']
    lines = now.decode().splitlines()
    assert lines[lines.index('vnc_listen = "127.0.0.2"') - 1] == '#vnc_listen = "0.0.0.0"'
    st, st0 = os.stat(QEMU_CONF), system_qemu_conf['stat']
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == \
        (stat.S_IMODE(st0.st_mode), st0.st_uid, st0.st_gid)
    assert res['diff'][0]['after_header'] == QEMU_CONF

    # check mode again, and a re-run: unchanged
    res = run_module('vnc_listen', args, check=True)
    assert not res['changed'] and not res['daemon_restart_required'], res
    res = run_module('vnc_listen', args)
    assert not res['changed'], res
    assert read_bytes(QEMU_CONF) == now

    # what the module does not do, the handler does: restart libvirtd, then start the guest
    system_qemu_conf['restart']()
    dom = conn.lookupByName(name)  # domain objects from before the restart are dead
    dom.create()
    live = vnc_of(dom.XMLDesc(0))
    assert live['listen'] == '127.0.0.2'
    assert live['listen_el'] == {'type': 'address', 'address': '127.0.0.2'}
    assert rfb_banner('127.0.0.2', live['port']).startswith(b'RFB ')
    # the persistent definition still has no address of its own
    assert vnc_of(dom.XMLDesc(INACTIVE_SECURE))['listen'] is None

    res = run_module('vnc_listen', args, check=True)
    mine = [d for d in res['displays'] if d['domain'] == name]
    port = int(live['port'])
    assert mine == [{'domain': name, 'listen': '127.0.0.2', 'port': port,
                     'display': vncdisplay(name),
                     'ssh_tunnel': 'ssh -L %d:127.0.0.2:%d -N -f ops@hv1' % (port, port)}]
    assert mine[0]['display'] == '127.0.0.2:%d' % (port - 5900)
    assert res['ssh_tunnels'] == [d['ssh_tunnel'] for d in res['displays']]
    assert name not in res['domains_restart_required']

    # going back to 127.0.0.1: the running guest keeps 127.0.0.2 until it restarts
    res = run_module('vnc_listen', {'listen': '127.0.0.1'}, check=True)
    assert res['changed'] and res['config_changes'][0]['action'] == 'replace'
    assert name in res['domains_restart_required']
    dom.destroy()


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
    ])
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
