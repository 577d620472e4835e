"""The console in a browser (issue 31), for real, on 127.0.0.1: a tiny guest on this host's
libvirtd with VNC on 127.0.0.1 (kernel console on tty0, so the VGA screen shows its boot and
the marker lines), virt_console_token writing its token, and websockify started with the
command line of the kvm_host role's unit (roles/kvm_host/defaults: kvm_host_console_command,
the collection's token plugin copied as kvmops_console_tokens, as the role copies it) as
nobody:nogroup, reading the token directory through its group, as the unit's own user would.

Fast (make integration):
- the module: check mode writes nothing, the real run writes a 0640 file with the directory's
  group, the re-run changes nothing, absent removes it; a guest that is not running is refused
  and nothing is written (a VNC beyond loopback is refused in the unit tests: every listen
  address of a test here stays in 127.0.0.0/8);
- websockify's answer, over a raw WebSocket: the token -> 101 and QEMU's RFB banner through
  the proxy; an unknown token and an expired one (written by the module's manager with a clock
  an hour back, so its expiry is really past) -> the connection is closed without a 101, and
  websockify logs "not found"; the next module run removes the expired file.
Marker console (make console, needs Debian's chromium):
- headless Chromium opens the module's URL; noVNC says "Connected", its canvas holds the same
  picture as `virsh screenshot` (>= 99 % of the pixels equal, and not blank: many distinct
  colours); the page's screenshot is kept as .build/console/browser-console.png; an unknown and
  an expired token make noVNC show "Failed to connect to server".
"""
import io
import os
import shutil
import socket
import subprocess
import time

import jinja2
import pytest
import yaml

from support import ansible_run, paths
from support.browser import chromium, websocket_upgrade
from support.libvirt_helpers import tiny_guest_xml, wait_for_text

from ansible_collections.kvmops.hypervisor.plugins.module_utils._console import manager as _manager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._console import tokens as _tokens

ARTEFACTS = os.path.join(paths.REPO, '.build', 'console')
ROLE = os.path.join(paths.REPO, 'roles', 'kvm_host')
PLUGIN = os.path.join(paths.REPO, 'plugins', 'module_utils', '_console', 'tokens.py')
STATUS_ERROR = ("(function(){var s=document.getElementById('noVNC_status');"
                "return s&&s.classList.contains('noVNC_status_error')?s.textContent:null})()")
STATUS = "(document.getElementById('noVNC_status')||{}).textContent"
CANVAS_PNG = ("(function(){var c=document.querySelector('#noVNC_container canvas');"
              "return c&&c.width>100?c.toDataURL('image/png'):null})()")


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def role_command(**overrides):
    """kvm_host_console_command of the role's defaults, rendered with its defaults and vars
    and the overrides (what the unit's ExecStart runs)."""
    with open(os.path.join(ROLE, 'defaults', 'main.yml')) as f:
        values = yaml.safe_load(f)
    with open(os.path.join(ROLE, 'vars', 'main.yml')) as f:
        values.update(yaml.safe_load(f))
    values.update(overrides)
    env = jinja2.Environment()
    env.filters['bool'] = lambda v: v if isinstance(v, bool) else str(v).lower() in ('1', 'true', 'yes')
    text = values['kvm_host_console_command']
    for dummy in range(3):     # nested variables
        text = env.from_string(text).render(**values)
    # one line: the unit's ExecStart must not be cut by a newline of YAML's folding
    assert '\n' not in text.strip(), repr(text)
    return text.split()


@pytest.fixture(scope='module')
def console(conn, module_prefix, module_image_dir, tiny):
    """The guest, the token directory and websockify."""
    base = os.path.join('/var/tmp', module_prefix.rstrip('-'))
    token_dir = os.path.join(base, 'tokens')
    lib = os.path.join(base, 'lib')
    os.makedirs(token_dir)
    os.makedirs(lib)
    os.chmod(base, 0o755)
    shutil.chown(token_dir, 'root', 'nogroup')
    os.chmod(token_dir, 0o750)
    shutil.copy(PLUGIN, os.path.join(lib, 'kvmops_console_tokens.py'))
    os.chmod(os.path.join(lib, 'kvmops_console_tokens.py'), 0o644)
    os.chmod(lib, 0o755)

    name = module_prefix + 'vm'
    log = os.path.join(module_image_dir, 'serial.log')
    dom = conn.defineXML(tiny_guest_xml(
        name, tiny, log, memory=128, cmdline='console=ttyS0 console=tty0',
        devices="<graphics type='vnc' autoport='yes' listen='127.0.0.1'/>"))
    dom.create()
    # defined, never started: every listen address of a test stays in 127.0.0.0/8, so the
    # refusal of a public VNC is in the unit tests (libvirt's test driver)
    off = conn.defineXML(tiny_guest_xml(
        module_prefix + 'off', tiny, os.path.join(module_image_dir, 'off.log'), memory=128,
        devices="<graphics type='vnc' autoport='yes' listen='127.0.0.1'/>"))
    port = _free_port()
    argv = role_command(kvm_host_console_token_dir=token_dir, kvm_host_console_port=port)
    ws_log = os.path.join(base, 'websockify.log')
    with open(ws_log, 'wb') as out:
        proc = subprocess.Popen(
            ['setpriv', '--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups', 'env',
             'PYTHONPATH=' + lib] + argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(('127.0.0.1', port), timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, open(ws_log).read()
                time.sleep(0.2)
        # the kernel's last lines before /init prints its markers on tty0
        wait_for_text(log, 'Power Button [PWRF]', timeout=120)
        time.sleep(2)
        yield {'name': name, 'dom': dom, 'off': off.name(), 'token_dir': token_dir,
               'port': port, 'url': 'http://127.0.0.1:%d' % port, 'ws_log': ws_log,
               'argv': argv, 'base': base}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def _token_args(c, **kw):
    args = {'domains': [c['name']], 'token_dir': c['token_dir'], 'url': c['url']}
    args.update(kw)
    return args


def _valid_console(c):
    res = ansible_run.run_module('virt_console_token', _token_args(c))
    assert not res.get('failed'), res.get('msg')
    return res['consoles'][0]


def test_unit_command_is_websockify_with_our_plugin(console):
    argv = console['argv']
    assert argv[0] == '/usr/bin/websockify' and argv[-1] == '127.0.0.1:%d' % console['port']
    assert argv[argv.index('--token-plugin') + 1] == 'kvmops_console_tokens.ExpiringTokenDir'
    assert argv[argv.index('--token-source') + 1] == console['token_dir']
    assert '--ssl-only' not in argv


def test_module_check_real_rerun_absent(console):
    c = console
    res = ansible_run.run_module('virt_console_token', _token_args(c), check=True, diff=True)
    assert res['changed'] and not res.get('failed'), res.get('msg')
    assert os.listdir(c['token_dir']) == []
    assert res['consoles'][0]['token'] is None

    res = ansible_run.run_module('virt_console_token', _token_args(c), diff=True)
    assert res['changed'], res
    entry = res['consoles'][0]
    assert entry['target'].startswith('127.0.0.1:59')
    path = os.path.join(c['token_dir'], entry['uuid'] + '.token')
    st = os.stat(path)
    assert oct(st.st_mode & 0o777) == '0o640' and st.st_gid == os.stat(c['token_dir']).st_gid
    assert entry['token'] not in str(res['diff']) and entry['token'] not in str(res['actions'])
    # independent check: the port in the token is the one libvirt reports
    display = subprocess.run(['virsh', '-c', paths.URI, 'vncdisplay', c['name']],
                             stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    assert entry['target'] == '127.0.0.1:%d' % (5900 + int(display.strip().rsplit(':', 1)[1]))

    again = ansible_run.run_module('virt_console_token', _token_args(c))
    assert not again['changed'] and again['consoles'][0]['token'] == entry['token']

    gone = ansible_run.run_module('virt_console_token', _token_args(c, state='absent'))
    assert gone['changed'] and os.listdir(c['token_dir']) == []


def test_a_guest_that_is_not_running_is_refused(console):
    res = ansible_run.run_module('virt_console_token',
                                 _token_args(console, domains=[console['name'], console['off']]))
    assert res.get('failed')
    assert 'is not running' in res['msg'] and 'No token was written' in res['msg'], res['msg']
    assert os.listdir(console['token_dir']) == []


def _expired_token(c):
    """A token file written by the module's own manager with a clock an hour back: its
    expiry (lifetime 1800 s) was half an hour ago."""
    import libvirt
    conn = libvirt.open(paths.URI)
    try:
        params = dict(domains=[c['name']], state='present', lifetime=1800, renew_before=300,
                      rotate=True, token_dir=c['token_dir'], url=c['url'])
        res = _manager.ConsoleTokenManager(conn, params, clock=lambda: time.time() - 3600).run()
    finally:
        conn.close()
    return res['consoles'][0]


def test_websockify_answers_only_a_valid_token(console):
    c = console
    good = _valid_console(c)
    status, first = websocket_upgrade(c['port'], '/websockify?token=' + good['token'])
    assert status == 'HTTP/1.1 101 Switching Protocols' and first == b'RFB 003.008\n', (status, first)

    unknown = 'u' * 43
    status, first = websocket_upgrade(c['port'], '/websockify?token=' + unknown)
    assert status == '' and first is None, status        # closed before any answer
    status, dummy = websocket_upgrade(c['port'], '/websockify')
    assert status == ''

    expired = _expired_token(c)
    assert expired['expires_epoch'] < time.time()
    assert _tokens.parse(open(os.path.join(c['token_dir'], expired['uuid'] + '.token')).read())
    status, first = websocket_upgrade(c['port'], '/websockify?token=' + expired['token'])
    assert status == '' and first is None, status
    with open(c['ws_log']) as f:
        log = f.read()
    assert "Token '%s' not found" % unknown in log and "Token '%s' not found" % expired['token'] in log

    res = ansible_run.run_module('virt_console_token', _token_args(c, state='absent'))
    assert {'domain': c['name'], 'reason': 'expired'} in res['removed'], res['removed']
    assert os.listdir(c['token_dir']) == []


def test_console_playbook_prints_the_tunnel_and_a_working_url(console, tmp_path):
    c = console
    inventory = tmp_path / 'hosts.ini'
    inventory.write_text('[hypervisors]\nlocalhost ansible_connection=local '
                         'ansible_python_interpreter=%s kvm_host_console_port=%d\n'
                         % (paths.TARGET_PYTHON, c['port']))
    extra = {'console_guests': [c['name']], 'console_token_dir': c['token_dir'],
             'console_local_port': c['port']}
    doc = ansible_run.run_playbook(os.path.join(paths.REPO, 'playbooks', 'console.yml'),
                                   inventory=str(inventory), extra_vars=extra)
    assert doc['_rc'] == 0, doc['_stderr'][-3000:]
    lines = [t['hosts']['localhost']['msg'] for p in doc['plays'] for t in p['tasks']
             if t['task']['name'].startswith('Open the tunnel')][0]
    assert len(lines) == 1, lines
    host, domain, tunnel, url, until = lines[0].split(' | ')
    assert (host, domain) == ('localhost', c['name'])
    assert tunnel == ('ssh -f -N -o ExitOnForwardFailure=yes -L 127.0.0.1:%d:127.0.0.1:%d localhost'
                      % (c['port'], c['port']))
    assert url.startswith('http://127.0.0.1:%d/vnc.html?autoconnect=1&path=websockify%%3Ftoken%%3D' % c['port'])
    token = url.rsplit('%3D', 1)[1]
    status, first = websocket_upgrade(c['port'], '/websockify?token=' + token)
    assert status.startswith('HTTP/1.1 101') and first == b'RFB 003.008\n'
    extra['console_state'] = 'absent'
    doc = ansible_run.run_playbook(os.path.join(paths.REPO, 'playbooks', 'console.yml'),
                                   inventory=str(inventory), extra_vars=extra)
    assert doc['_rc'] == 0 and os.listdir(c['token_dir']) == [], doc['_stderr'][-3000:]


def _png_pixels(data):
    from PIL import Image
    img = Image.open(io.BytesIO(data)).convert('RGB')
    raw = img.tobytes()
    return img.size, [raw[i:i + 3] for i in range(0, len(raw), 3)]


@pytest.mark.console
def test_browser_shows_the_guest_console(console, tmp_path):
    import base64
    c = console
    good = _valid_console(c)
    os.makedirs(ARTEFACTS, exist_ok=True)
    with chromium(good['url'], log_path=str(tmp_path / 'chromium.log')) as browser:
        status = browser.wait_for(STATUS + ".indexOf('Connected')>=0 && " + STATUS, timeout=60)
        assert status and c['name'] in status, browser.evaluate(STATUS)
        canvas = browser.wait_for(CANVAS_PNG, timeout=30)
        time.sleep(1)
        canvas = browser.evaluate(CANVAS_PNG)
        browser.screenshot(os.path.join(ARTEFACTS, 'browser-console.png'))
    virsh_png = str(tmp_path / 'virsh.png')
    subprocess.run(['virsh', '-c', paths.URI, 'screenshot', c['name'], virsh_png], check=True,
                   stdout=subprocess.DEVNULL)
    size, seen = _png_pixels(base64.b64decode(canvas.split(',', 1)[1]))
    with open(virsh_png, 'rb') as f:
        vsize, truth = _png_pixels(f.read())
    assert size == vsize, (size, vsize)
    same = sum(1 for a, b in zip(seen, truth) if a == b) / float(len(truth))
    lit = sum(1 for p in seen if sum(bytearray(p)) > 150) / float(len(seen))
    assert same >= 0.99, 'the browser shows %.1f %% of the guest screen' % (100 * same)
    assert 0.01 < lit < 0.6, 'not a text console: %.1f %% of pixels lit' % (100 * lit)
    shutil.copy(virsh_png, os.path.join(ARTEFACTS, 'virsh-screenshot.png'))


@pytest.mark.console
def test_browser_refuses_unknown_and_expired_tokens(console, tmp_path):
    c = console
    expired = _expired_token(c)
    for label, token in (('unknown', 'x' * 43), ('expired', expired['token'])):
        url = _manager.console_url(c['url'], token)
        with chromium(url, log_path=str(tmp_path / ('chromium-%s.log' % label))) as browser:
            error = browser.wait_for(STATUS_ERROR, timeout=60)
            assert error == 'Failed to connect to server', (label, browser.evaluate(STATUS))
            assert browser.evaluate("document.querySelector('#noVNC_container canvas').width") in (0, None)
            browser.screenshot(os.path.join(ARTEFACTS, 'browser-%s-token.png' % label))
    res = ansible_run.run_module('virt_console_token', _token_args(c, state='absent'))
    assert not res.get('failed')
