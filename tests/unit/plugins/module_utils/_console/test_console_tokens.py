"""The browser console's token files and websockify plugin (tokens.py), the live-XML target
rule (target.py) and virt_console_token's manager, against libvirt's test driver
(test:///default: real libvirt domain XML and lifecycle in-process, no daemon) and real files
in a temporary directory. The clock is injected, so expiry needs no sleeping."""
import itertools
import os
import stat
import subprocess
import uuid as _uuid

import libvirt
import pytest
from lxml import etree

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._console import manager as _console_manager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._console import target as _target
from ansible_collections.kvmops.hypervisor.plugins.module_utils._console import tokens as _tokens

NOW = 1800000000
SYSTEM_PYTHON = '/usr/bin/python3'
COUNTER = itertools.count()
TOKEN = 'A' * 43


def _entry(**kw):
    e = {'token': TOKEN, 'domain': 'vm1', 'uuid': str(_uuid.uuid4()), 'target': '127.0.0.1:5901',
         'created': NOW, 'expires': NOW + 600}
    e.update(kw)
    return e


# ------------------------------------------------------------------------------ tokens.py

@pytest.mark.parametrize('target', ['127.0.0.1:5901', '127.0.0.2:5999', '::1:5901',
                                    'unix_socket:/var/lib/libvirt/qemu/domain-1-vm1/vnc.sock'])
def test_allowed_targets(target):
    assert _tokens.target_problem(target) is None


@pytest.mark.parametrize('target,phrase', [
    ('192.168.122.5:5901', 'not on loopback'), ('0.0.0.0:5901', 'not on loopback'),
    ('10.0.0.1:22', 'not on loopback'), ('example.org:5901', 'not an IP address'),
    ('127.0.0.1:0', 'not ADDRESS:PORT'), ('127.0.0.1:70000', 'not ADDRESS:PORT'),
    ('127.0.0.1', 'not ADDRESS:PORT'), ('unix_socket:relative/vnc.sock', 'not absolute'),
    ('unix_socket:/tmp/a:b', 'colon'), ('unix_socket:/tmp/a b', 'white space'), ('', 'empty')])
def test_refused_targets(target, phrase):
    assert phrase in _tokens.target_problem(target)


def test_render_parse_round_trip_and_websockify_reads_it():
    e = _entry(domain='odd "name"\nline')
    text = _tokens.render(e)
    assert text.count('\n') == 2            # the name cannot add a line
    assert _tokens.parse(text) == e
    assert text.splitlines()[1] == '%s: 127.0.0.1:5901' % TOKEN


def test_stock_websockify_token_file_reads_our_files(tmp_path):
    """Debian's websockify (the system Python that runs the service; testbed/setup.sh
    installs it) reads our files with its own TokenFile plugin, the comment line skipped."""
    e = _entry()
    (tmp_path / _tokens.file_name(e['uuid'])).write_text(_tokens.render(e))
    out = subprocess.run(
        [SYSTEM_PYTHON, '-c', 'import sys; from websockify.token_plugins import TokenFile; '
         'print(TokenFile(sys.argv[1]).lookup(sys.argv[2]))', str(tmp_path), TOKEN],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert out.stdout.strip() == "['127.0.0.1', '5901']", out.stdout


@pytest.mark.parametrize('text', [
    '', 'tok: 127.0.0.1:5901\n',                                          # no kvmops line
    _tokens.MARKER + '{"domain": "a"}\n%s: 127.0.0.1:5901\n' % TOKEN,     # fields missing
    _tokens.MARKER + 'not json\n%s: 127.0.0.1:5901\n' % TOKEN])
def test_parse_refuses_foreign_or_broken_files(text):
    assert _tokens.parse(text) is None


def test_parse_refuses_a_token_line_that_disagrees_with_the_record():
    text = _tokens.render(_entry()).replace('%s: 127.0.0.1:5901' % TOKEN, '%s: 10.0.0.1:22' % TOKEN)
    assert _tokens.parse(text) is None


def test_render_refuses_bad_tokens_and_targets():
    with pytest.raises(_tokens.TokenFormatError):
        _tokens.render(_entry(token='short'))
    with pytest.raises(_tokens.TokenFormatError):
        _tokens.render(_entry(token='x' * 40 + ': 10.0.0.1'))
    with pytest.raises(_tokens.TokenFormatError):
        _tokens.render(_entry(target='192.0.2.1:5900'))
    with pytest.raises(_tokens.TokenFormatError):
        _tokens.file_name('../../etc/passwd')


def test_plugin_refuses_expired_unknown_and_hand_written_targets(tmp_path):
    live, old = _entry(token='L' * 43), _entry(token='E' * 43, expires=NOW - 1)
    for e in (live, old):
        (tmp_path / _tokens.file_name(e['uuid'])).write_text(_tokens.render(e))
    # written by hand, pointing off loopback: websockify's TokenFile would follow it
    (tmp_path / 'evil.token').write_text(
        _tokens.MARKER + '{"domain": "x", "uuid": "u", "target": "10.0.0.1:22", "created": 0, '
        '"expires": 9999999999}\n' + 'H' * 43 + ': 10.0.0.1:22\n')
    plugin = _tokens.ExpiringTokenDir(str(tmp_path), clock=lambda: NOW)
    assert plugin.lookup('L' * 43) == ['127.0.0.1', '5901']
    assert plugin.lookup('E' * 43) is None                 # expired a second ago
    assert plugin.lookup('H' * 43) is None
    assert plugin.lookup('U' * 43) is None                 # unknown
    assert plugin.lookup('../x') is None and plugin.lookup(None) is None
    later = _tokens.ExpiringTokenDir(str(tmp_path), clock=lambda: NOW + 600)
    assert later.lookup('L' * 43) is None                  # expires at its second


def test_plugin_unix_socket_target(tmp_path):
    e = _entry(target='unix_socket:/run/vm1.sock')
    (tmp_path / _tokens.file_name(e['uuid'])).write_text(_tokens.render(e))
    assert _tokens.ExpiringTokenDir(str(tmp_path), clock=lambda: NOW).lookup(TOKEN) == \
        ['unix_socket', '/run/vm1.sock']


def test_tokens_py_imports_only_the_standard_library():
    """The role copies tokens.py to the hypervisor as websockify's plugin."""
    with open(_tokens.__file__) as f:
        text = f.read()
    assert 'ansible' not in text.split('"""', 2)[2]


# ------------------------------------------------------------------------------ target.py

def _tree(devices):
    return etree.fromstring('<domain><devices>%s</devices></domain>' % devices)


@pytest.mark.parametrize('graphics,expected', [
    ("<graphics type='vnc' port='5901' listen='127.0.0.1'><listen type='address' address='127.0.0.1' "
     "fromConfig='1'/></graphics>", '127.0.0.1:5901'),
    ("<graphics type='vnc' port='5902'><listen type='address' address='::1'/></graphics>", '::1:5902'),
    ("<graphics type='vnc' socket='/run/a/vnc.sock'><listen type='socket' socket='/run/a/vnc.sock'/>"
     "</graphics>", 'unix_socket:/run/a/vnc.sock')])
def test_live_target(graphics, expected):
    assert _target.live_target(_tree(graphics), 'vm') == (expected, None)


@pytest.mark.parametrize('graphics,phrase', [
    ("<graphics type='vnc' port='5901' listen='0.0.0.0'/>", 'listens on 0.0.0.0'),
    ("<graphics type='vnc' port='5901' listen='192.0.2.7'/>", 'listens on 192.0.2.7'),
    ("<graphics type='vnc' port='-1' listen='127.0.0.1'/>", 'no VNC port'),
    ("<graphics type='vnc' port='5901'><listen type='network' network='default'/></graphics>",
     'listens on a network'),
    ("<graphics type='spice' port='5901' listen='127.0.0.1'/>", 'has no VNC graphics (it has spice)'),
    ('', 'has no VNC graphics')])
def test_live_target_refusals(graphics, phrase):
    target, problem = _target.live_target(_tree(graphics), 'vm')
    assert target is None and phrase in problem, problem


# ------------------------------------------------------------------------------ the manager

GUEST = """<domain type='test'><name>{name}</name><memory>65536</memory><os><type>hvm</type></os>
<devices>{graphics}</devices></domain>"""


@pytest.fixture
def conn():
    c = libvirt.open('test:///default')
    made = []

    def guest(name, graphics="<graphics type='vnc' port='{port}' autoport='no' listen='127.0.0.1'/>",
              port=5911, start=True):
        d = c.defineXML(GUEST.format(name=name, graphics=graphics.format(port=port)))
        made.append(d)
        if start:
            d.create()
        return d
    c.guest = guest
    yield c
    for d in made:
        try:
            if d.isActive():
                d.destroy()
            d.undefine()
        except libvirt.libvirtError:
            pass
    c.close()


@pytest.fixture
def token_dir(tmp_path):
    d = tmp_path / 'tokens'
    d.mkdir()
    os.chmod(str(d), 0o750)
    return d


def _params(token_dir, **kw):
    p = dict(domains=['u-vm1'], state='present', lifetime=1800, renew_before=300, rotate=False,
             token_dir=str(token_dir), url='http://127.0.0.1:6080')
    p.update(kw)
    return p


class Clock(object):
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


def _manager(conn, token_dir, clock=None, check=False, diff=True, **kw):
    return _console_manager.ConsoleTokenManager(
        conn, _params(token_dir, **kw), check_mode=check, diff_mode=diff, clock=clock or Clock(),
        qemu_conf='/nonexistent', new_token=lambda: 'T%042d' % next(COUNTER))


def test_check_mode_then_real_then_idempotent_then_absent(conn, token_dir):
    conn.guest('u-vm1')
    clock = Clock()
    res = _manager(conn, token_dir, clock, check=True).run()
    assert res['changed'] and os.listdir(str(token_dir)) == []
    assert res['consoles'][0]['token'] is None and res['consoles'][0]['target'] == '127.0.0.1:5911'
    assert "'T0" not in str(res)

    res = _manager(conn, token_dir, clock).run()
    assert res['changed']
    c = res['consoles'][0]
    assert c['target'] == '127.0.0.1:5911' and c['expires_in'] == 1800
    assert c['url'] == 'http://127.0.0.1:6080/vnc.html?autoconnect=1&path=websockify%3Ftoken%3D' + c['token']
    files = os.listdir(str(token_dir))
    assert files == [c['uuid'] + '.token']
    path = os.path.join(str(token_dir), files[0])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.stat(path).st_gid == os.stat(str(token_dir)).st_gid
    assert c['token'] not in res['diff']['after'] and '********' in res['diff']['after']
    assert c['token'] not in ' '.join(res['actions'])
    assert _tokens.ExpiringTokenDir(str(token_dir), clock=clock).lookup(c['token']) == ['127.0.0.1', '5911']

    clock.now += 600
    again = _manager(conn, token_dir, clock).run()
    assert not again['changed'] and again['consoles'][0]['token'] == c['token']
    assert again['consoles'][0]['expires_in'] == 1200

    res = _manager(conn, token_dir, clock, state='absent').run()
    assert res['changed'] and os.listdir(str(token_dir)) == []
    assert not _manager(conn, token_dir, clock, state='absent').run()['changed']


def test_renewal_near_expiry_and_rotate(conn, token_dir):
    conn.guest('u-vm1')
    clock = Clock()
    first = _manager(conn, token_dir, clock).run()['consoles'][0]['token']
    clock.now += 1800 - 300
    renewed = _manager(conn, token_dir, clock).run()
    assert renewed['changed'] and renewed['consoles'][0]['token'] != first
    rotated = _manager(conn, token_dir, clock, rotate=True).run()
    assert rotated['changed'] and rotated['consoles'][0]['token'] != renewed['consoles'][0]['token']
    assert len(os.listdir(str(token_dir))) == 1


def test_sweep_removes_expired_stopped_and_moved_but_not_foreign_files(conn, token_dir):
    vm1, vm2 = conn.guest('u-vm1'), conn.guest('u-vm2', port=5912)
    vm3 = conn.guest('u-vm3', port=5913)
    clock = Clock()
    res = _manager(conn, token_dir, clock, domains=['u-vm1', 'u-vm2', 'u-vm3'], lifetime=600,
                   renew_before=0).run()
    assert len(res['consoles']) == 3
    (token_dir / 'hand-made.token').write_text('mine: 127.0.0.1:5999\n')
    (token_dir / 'notes.txt').write_text('x')
    vm2.destroy()                                     # stopped: its port may go to another guest
    vm3.destroy()
    vm3.undefine()
    conn.guest('u-vm3', port=5920)                    # same name, new UUID and port
    clock.now += 300
    res = _manager(conn, token_dir, clock, domains=['u-vm3']).run()
    reasons = sorted((r['domain'], r['reason']) for r in res['removed'])
    assert reasons == [('u-vm2', 'guest not running'), ('u-vm3', 'guest not running')]
    clock.now += 301
    res = _manager(conn, token_dir, clock, domains=['u-vm3']).run()
    assert [(r['domain'], r['reason']) for r in res['removed']] == [('u-vm1', 'expired')]
    assert sorted(os.listdir(str(token_dir))) == sorted(
        ['hand-made.token', 'notes.txt', res['consoles'][0]['uuid'] + '.token'])
    assert vm1.isActive()


def test_vnc_moved_is_stale(conn, token_dir, tmp_path):
    vm = conn.guest('u-vm1')
    uuid = vm.UUIDString()
    e = _entry(uuid=uuid, domain='u-vm1', target='127.0.0.1:5950', expires=NOW + 900)
    (token_dir / _tokens.file_name(uuid)).write_text(_tokens.render(e))
    res = _manager(conn, token_dir).run()
    assert [(r['domain'], r['reason']) for r in res['removed']] == [('u-vm1', 'VNC moved')]
    assert res['consoles'][0]['target'] == '127.0.0.1:5911'


def test_all_skips_guests_a_token_cannot_reach(conn, token_dir):
    conn.guest('u-vm1')
    conn.guest('u-pub', graphics="<graphics type='vnc' port='5930' autoport='no' listen='0.0.0.0'/>")
    conn.guest('u-sock', graphics="<graphics type='vnc'><listen type='socket' socket='/run/u/vnc.sock'/>"
                                  "</graphics>")
    res = _manager(conn, token_dir, domains=['all']).run()
    targets = dict((c['domain'], c['target']) for c in res['consoles'])
    assert targets.get('u-vm1') == '127.0.0.1:5911' and targets.get('u-sock') == 'unix_socket:/run/u/vnc.sock'
    assert 'u-pub' not in targets


@pytest.mark.parametrize('name,kw,phrase', [
    ('u-pub', dict(graphics="<graphics type='vnc' port='5930' autoport='no' listen='0.0.0.0'/>"),
     'its VNC listens on 0.0.0.0'),
    ('u-off', dict(start=False), 'is not running'),
    ('u-none', dict(graphics=''), 'has no VNC graphics')])
def test_refusals_write_nothing(conn, token_dir, name, kw, phrase):
    conn.guest('u-vm1')
    conn.guest(name, **kw)
    with pytest.raises(KvmopsError) as err:
        _manager(conn, token_dir, domains=['u-vm1', name]).run()
    assert phrase in err.value.msg and 'No token was written' in err.value.msg
    assert os.listdir(str(token_dir)) == []


def test_unknown_guest(conn, token_dir):
    with pytest.raises(KvmopsError) as err:
        _manager(conn, token_dir, domains=['u-nope']).run()
    assert 'no guest named u-nope' in err.value.msg


@pytest.mark.parametrize('kw,phrase', [
    (dict(lifetime=10), 'lifetime 10 is out of range'),
    (dict(lifetime=100000), 'out of range'),
    (dict(renew_before=1800), 'renew_before 1800'),
    (dict(domains=['all', 'u-vm1']), 'stands alone')])
def test_bad_options(conn, token_dir, kw, phrase):
    with pytest.raises(KvmopsError) as err:
        _manager(conn, token_dir, **kw).run()
    assert phrase in err.value.msg


def test_directory_must_exist_and_not_be_world_readable(conn, token_dir, tmp_path):
    with pytest.raises(KvmopsError) as err:
        _manager(conn, tmp_path / 'missing').run()
    assert 'does not exist' in err.value.msg and 'kvm_host_console' in err.value.msg
    os.chmod(str(token_dir), 0o755)
    with pytest.raises(KvmopsError) as err:
        _manager(conn, token_dir).run()
    assert 'readable or writable by every user' in err.value.msg and 'chmod 0750' in err.value.msg


def test_warns_when_qemu_conf_turns_vnc_tls_on(conn, token_dir, tmp_path):
    conn.guest('u-vm1')
    conf = tmp_path / 'qemu.conf'
    conf.write_text('vnc_tls = 1\nvnc_tls_x509_verify = 1\n')
    warnings = []
    m = _console_manager.ConsoleTokenManager(conn, _params(token_dir), warn=warnings.append,
                                             qemu_conf=str(conf))
    m.run()
    assert len(warnings) == 1 and 'noVNC' in warnings[0] and 'u-vm1' in warnings[0]


def test_real_tokens_are_random_and_url_safe(conn, token_dir):
    conn.guest('u-vm1')
    conn.guest('u-vm2', port=5912)
    m = _console_manager.ConsoleTokenManager(conn, _params(token_dir, domains=['u-vm1', 'u-vm2']),
                                             qemu_conf='/nonexistent')
    toks = [c['token'] for c in m.run()['consoles']]
    assert len(set(toks)) == 2 and all(_tokens.TOKEN_RE.match(t) and len(t) == 43 for t in toks)
