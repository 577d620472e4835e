"""vnc_listen with scope: host (the system qemu.conf, libvirtd restarted by the test) against
the real libvirtd. scope: domains: test_vnc_listen_domains.py; refusals:
test_vnc_listen_refusals.py.

Every address a guest listens on here is inside 127.0.0.0/8. Non-loopback addresses are only
exercised through libvirt's test driver (test:///<file>), where nothing listens at all.
Verification is independent of the module: libvirt-python, the file's bytes, `virsh
vncdisplay`, and a TCP connect that reads QEMU's RFB banner.
"""
import difflib
import os
import stat

import pytest

from support import faults
from support.ansible_run import run_module
from support.vnc import (INACTIVE_SECURE, QEMU_CONF, define_guest, rfb_banner, read_bytes,
                         vnc_of, vncdisplay)


@pytest.fixture
def system_qemu_conf(daemon_exclusive):
    """Exclusive use of /etc/libvirt/qemu.conf: its original bytes come back at the end, and
    libvirtd is restarted again if a test restarted it on an edited file."""
    original = read_bytes(QEMU_CONF)
    st = os.stat(QEMU_CONF)
    state = {'restarted': False}

    def restart():
        state['restarted'] = True
        faults.restart_libvirtd()

    yield {'original': original, 'stat': st, 'restart': restart}
    if read_bytes(QEMU_CONF) != original:
        with open(QEMU_CONF, 'wb') as f:  # in place: owner, mode and context stay
            f.write(original)
        os.chown(QEMU_CONF, st.st_uid, st.st_gid)
        os.chmod(QEMU_CONF, stat.S_IMODE(st.st_mode))
        faults.restart_libvirtd()
    elif state['restarted']:
        faults.restart_libvirtd()


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
