"""VNC over TLS with x509 client verification, proven with a real VeNCrypt client (issue 31):
gtk-vnc's gvnccapture (Debian package gvncviewer) captures a guest's screen with a client
certificate of the libvirt_pki role's CA, and is refused without one.

- The CA and the viewer's client bundle come from the libvirt_pki role's controller half (tasks
  ca and clients, libvirt_pki_client_bundles) in a temporary directory. The server certificate
  for 127.0.0.1 is signed here with that CA by openssl (the role issues server certificates on
  a hypervisor, into /etc/pki, which this shared host's other tests must not see).
- The guest's QEMU gets its TLS from libvirt: under the EXCLUSIVE test-bed lock, qemu.conf gets
  vnc_tls = 1, vnc_tls_x509_cert_dir and vnc_tls_x509_verify = 1, libvirtd restarts, the guest
  starts (QEMU keeps its VNC TLS for its lifetime), and qemu.conf is restored byte for byte
  and libvirtd restarted again; the test keeps the lock until its captures are done.
- A second guest, with its VNC on a UNIX socket, started in the same window shows that
  libvirt 9.0 puts TLS on a socket too (`-vnc vnc=unix:...,tls-creds=...`): with host-wide VNC
  TLS no guest is reachable by noVNC, which cannot present a client certificate; that is why
  kvm_host refuses the browser console together with VNC TLS.
- gvnccapture reads ~/.pki of the user's passwd home (not $HOME): it runs in a private mount
  namespace with a temporary directory bound over /root, so nothing is written to root's home.
Marker console (make console): it restarts the shared libvirtd twice.
"""
import os
import shutil
import subprocess
import time

import libvirt
import pytest

from support import paths
from support.ansible_run import run_playbook
from support.faults import restart_libvirtd
from support.libvirt_helpers import tiny_guest_xml, wait_for_text

pytestmark = pytest.mark.console
QEMU_CONF = '/etc/libvirt/qemu.conf'
ARTEFACTS = os.path.join(paths.REPO, '.build', 'console')
SERVER_CNF = """[req]
distinguished_name = dn
prompt = no
[dn]
O = kvmops-test
CN = localhost
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
"""


def _run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False, **kw)


def _pki(base):
    """The role's CA and a client bundle 'vnc-viewer', plus a server certificate directory."""
    play = os.path.join(base, 'pki.yml')
    with open(play, 'w') as f:
        f.write("""- hosts: localhost
  gather_facts: false
  vars:
    libvirt_pki_controller_dir: %(base)s/pki
    libvirt_pki_organization: kvmops-test
    libvirt_pki_controller_client: false
    libvirt_pki_client_bundles: [{name: vnc-viewer, dir: %(base)s/viewer}]
  tasks:
    - {name: ca, ansible.builtin.include_role: {name: kvmops.hypervisor.libvirt_pki, tasks_from: ca}}
    - {name: clients, ansible.builtin.include_role: {name: kvmops.hypervisor.libvirt_pki, tasks_from: clients}}
""" % {'base': base})
    doc = run_playbook(play, timeout=600)
    assert doc['_rc'] == 0, doc['_stderr'][-3000:]
    ca, ca_key = os.path.join(base, 'pki', 'ca', 'cacert.pem'), os.path.join(base, 'pki', 'ca', 'cakey.pem')
    vnc = os.path.join(base, 'vnc')
    os.mkdir(vnc)
    cnf = os.path.join(base, 'server.cnf')
    with open(cnf, 'w') as f:
        f.write(SERVER_CNF)
    key, csr, cert = (os.path.join(vnc, 'server-key.pem'), os.path.join(base, 'server.csr'),
                      os.path.join(vnc, 'server-cert.pem'))
    for argv in (['openssl', 'ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', key],
                 ['openssl', 'req', '-new', '-key', key, '-config', cnf, '-out', csr],
                 ['openssl', 'x509', '-req', '-in', csr, '-CA', ca, '-CAkey', ca_key,
                  '-CAcreateserial', '-days', '2', '-extfile', cnf, '-extensions', 'ext',
                  '-out', cert]):
        out = _run(argv)
        assert out.returncode == 0, (argv, out.stdout)
    shutil.copy(ca, os.path.join(vnc, 'ca-cert.pem'))
    # QEMU (libvirt-qemu on Debian) reads them; the key only through its group
    shutil.chown(key, 'root', 'libvirt-qemu')
    os.chmod(key, 0o640)
    for name in ('server-cert.pem', 'ca-cert.pem'):
        os.chmod(os.path.join(vnc, name), 0o644)
    os.chmod(vnc, 0o755)
    return vnc, os.path.join(base, 'viewer')


def _home(base, name, bundle=None, ca=True):
    """A home whose .pki is what gtk-vnc looks for: CA/cacert.pem and
    gvnccapture/{clientcert.pem,private/clientkey.pem}."""
    home = os.path.join(base, name)
    os.makedirs(os.path.join(home, '.pki', 'CA'))
    if ca:
        shutil.copy(os.path.join(base, 'viewer', 'cacert.pem'), os.path.join(home, '.pki', 'CA'))
    if bundle:
        client = os.path.join(home, '.pki', 'gvnccapture')
        os.makedirs(os.path.join(client, 'private'))
        shutil.copy(os.path.join(bundle, 'clientcert.pem'), client)
        shutil.copy(os.path.join(bundle, 'clientkey.pem'), os.path.join(client, 'private'))
    return home


def _gvnccapture(home, port, png):
    return _run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
                 'mount --bind "$1" /root && exec gvnccapture -d "127.0.0.1:$2" "$3"', 'sh',
                 home, str(port - 5900), png], timeout=120)


def _qemu_cmdline(name):
    with open('/run/libvirt/qemu/%s.pid' % name) as f:
        pid = f.read().strip()
    with open('/proc/%s/cmdline' % pid, 'rb') as f:
        return f.read().decode().split('\0')


@pytest.fixture(scope='module')
def pki(module_prefix):
    """The CA, the viewer's bundle and the server certificates (no lock needed)."""
    base = os.path.join('/var/tmp', module_prefix.rstrip('-'))
    os.makedirs(base)
    os.chmod(base, 0o755)
    t0 = time.time()
    vnc, bundle = _pki(base)
    print('PKI (libvirt_pki ca + clients, openssl server certificate): %.1f s' % (time.time() - t0))
    try:
        yield {'base': base, 'vnc': vnc, 'bundle': bundle, 'ready': time.time()}
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tls_guests(pki, conn, prefix, image_dir, tiny, daemon_exclusive):
    """The two guests started while qemu.conf has VNC TLS; the whole test holds the exclusive
    test-bed lock (daemon_exclusive: it restarts libvirtd twice)."""
    window = {'lock_wait': time.time() - pki['ready']}
    with open(QEMU_CONF, 'rb') as f:
        original = f.read()
    tcp = conn.defineXML(tiny_guest_xml(
        prefix + 'tls', tiny, os.path.join(image_dir, 'tls.log'), memory=128,
        cmdline='console=ttyS0 console=tty0',
        devices="<graphics type='vnc' autoport='yes' listen='127.0.0.1'/>")).name()
    sock = conn.defineXML(tiny_guest_xml(
        prefix + 'sock', tiny, os.path.join(image_dir, 'sock.log'), memory=128,
        devices="<graphics type='vnc'><listen type='socket'/></graphics>")).name()
    started = time.time()
    try:
        with open(QEMU_CONF, 'ab') as f:
            f.write(('\n# kvmops test %s (removed right after)\nvnc_tls = 1\n'
                     'vnc_tls_x509_cert_dir = "%s"\nvnc_tls_x509_verify = 1\n'
                     % (prefix, pki['vnc'])).encode())
        restart_libvirtd()
        fresh = libvirt.open(paths.URI)     # the restart closed every earlier connection
        try:
            fresh.lookupByName(tcp).create()
            fresh.lookupByName(sock).create()
        finally:
            fresh.close()
        window['tcp_cmdline'] = _qemu_cmdline(tcp)
        window['sock_cmdline'] = _qemu_cmdline(sock)
    finally:
        with open(QEMU_CONF, 'wb') as f:
            f.write(original)
        restart_libvirtd()
        window['seconds'] = time.time() - started
    with open(QEMU_CONF, 'rb') as f:
        assert f.read() == original
    wait_for_text(os.path.join(image_dir, 'tls.log'), 'Power Button [PWRF]', timeout=120)
    time.sleep(2)
    yield {'tcp': tcp, 'sock': sock, 'base': pki['base'], 'bundle': pki['bundle'],
           'window': window}


def _vnc_port(dom):
    out = _run(['virsh', '-c', paths.URI, 'vncdisplay', dom]).stdout.strip()
    return 5900 + int(out.rsplit(':', 1)[1])


def test_vencrypt_x509_capture_with_and_without_a_client_certificate(tls_guests, tmp_path):
    g = tls_guests
    print('waited %.1f s for the exclusive lock; qemu.conf TLS window (lock held): %.1f s'
          % (g['window']['lock_wait'], g['window']['seconds']))
    vnc_arg = g['window']['tcp_cmdline'][g['window']['tcp_cmdline'].index('-vnc') + 1]
    assert 'tls-creds=' in vnc_arg, vnc_arg
    creds = [a for a in g['window']['tcp_cmdline'] if 'tls-creds-x509' in a]
    assert creds and '"verify-peer":true' in creds[0].replace(' ', ''), creds

    port = _vnc_port(g['tcp'])
    os.makedirs(ARTEFACTS, exist_ok=True)
    png = os.path.join(ARTEFACTS, 'vencrypt-capture.png')
    if os.path.exists(png):
        os.unlink(png)
    good = _gvnccapture(_home(g['base'], 'home-cert', bundle=g['bundle']), port, png)
    assert 'Saved display to' in good.stdout, good.stdout[-3000:]
    assert 'Possible VeNCrypt sub-auth 260' in good.stdout       # x509 without password: VeNCrypt X509None
    from PIL import Image
    with Image.open(png) as img:
        assert img.size == (720, 400)
        raw = img.convert('RGB').tobytes()
    pixels = len(raw) // 3
    lit = sum(1 for i in range(0, len(raw), 3) if raw[i] + raw[i + 1] + raw[i + 2] > 150) / float(pixels)
    assert 0.01 < lit < 0.6, 'not the text console: %.1f %% of the pixels lit' % (100 * lit)

    refused = tmp_path / 'no-cert.png'
    bad = _gvnccapture(_home(g['base'], 'home-nocert'), port, str(refused))
    assert 'Unable to connect' in bad.stdout and not refused.exists(), bad.stdout[-3000:]
    assert 'No client cert or key provided' in bad.stdout

    # a client certificate that the CA did not sign: refused too
    other = os.path.join(g['base'], 'other')
    os.makedirs(other)
    for argv in (['openssl', 'ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out',
                  os.path.join(other, 'clientkey.pem')],
                 ['openssl', 'req', '-new', '-x509', '-days', '1', '-key',
                  os.path.join(other, 'clientkey.pem'), '-subj', '/O=kvmops-test/CN=intruder',
                  '-out', os.path.join(other, 'clientcert.pem')]):
        assert _run(argv).returncode == 0
    forged = _gvnccapture(_home(g['base'], 'home-forged', bundle=other), port, str(refused))
    assert 'Unable to connect' in forged.stdout and not refused.exists(), forged.stdout[-3000:]

    # What libvirt 9.0 does with vnc_tls = 1 for a guest whose VNC is a UNIX socket (it decides
    # whether the browser console, websockify on the socket, works on a host with VNC TLS).
    cmd = g['window']['sock_cmdline']
    sock_arg = cmd[cmd.index('-vnc') + 1]
    print('socket guest: -vnc %s' % sock_arg)
    # observed: 'vnc=unix:/var/lib/libvirt/qemu/domain-N-NAME/vnc.sock,tls-creds=vnc-tls-creds0,...'
    assert sock_arg.startswith('vnc=unix:')
    assert 'tls-creds=' in sock_arg, sock_arg    # TLS on the socket too: no browser console
