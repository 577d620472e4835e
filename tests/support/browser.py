"""Headless Chromium driven over the DevTools protocol, and a raw WebSocket handshake: what the
browser console tests need, with the standard library only (no selenium, no driver download).

- websocket_upgrade(port, path): one RFC 6455 handshake against 127.0.0.1:port; returns the
  HTTP status line (or '' when the server closed without answering) and the first data frame.
- Chromium(url): Debian's chromium with the flags that keep it off the network (see the
  machine notes: --disable-background-networking and friends), a fresh --user-data-dir,
  --remote-debugging-port=0 (the port is read from DevToolsActivePort); evaluate(js) and
  screenshot() over the page's DevTools WebSocket.
Everything on 127.0.0.1."""
import base64
import contextlib
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

CHROMIUM = '/usr/bin/chromium'
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--window-size=1024,768']


# ------------------------------------------------------------------------- WebSocket frames

def _recv_exact(sock, n):
    buf = b''
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError('connection closed after %d of %d bytes' % (len(buf), n))
        buf += chunk
    return buf


def send_frame(sock, payload, opcode=1):
    """One masked client frame (text by default)."""
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack('>H', n)
    else:
        head += bytes([0x80 | 127]) + struct.pack('>Q', n)
    mask = os.urandom(4)
    sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def recv_frame(sock):
    """(opcode, payload) of one message (continuation frames joined; server frames unmasked)."""
    data, first_op = b'', None
    while True:
        b0, b1 = _recv_exact(sock, 2)
        op, fin = b0 & 0x0F, b0 & 0x80
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack('>H', _recv_exact(sock, 2))[0]
        elif n == 127:
            n = struct.unpack('>Q', _recv_exact(sock, 8))[0]
        mask = _recv_exact(sock, 4) if b1 & 0x80 else None
        payload = _recv_exact(sock, n)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if first_op is None:
            first_op = op
        data += payload
        if fin:
            return first_op, data


def _handshake(sock, host, path, protocol=None):
    key = base64.b64encode(os.urandom(16)).decode()
    req = ('GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
           'Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n' % (path, host, key))
    if protocol:
        req += 'Sec-WebSocket-Protocol: %s\r\n' % protocol
    sock.sendall((req + '\r\n').encode())
    head = b''
    while not head.endswith(b'\r\n\r\n'):
        chunk = sock.recv(1)     # byte by byte: what follows the head is the first frame
        if not chunk:
            break
        head += chunk
    return head


def websocket_upgrade(port, path, timeout=10):
    """(status line, first message payload or None) of a binary WebSocket to 127.0.0.1:port."""
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        head = _handshake(sock, '127.0.0.1:%d' % port, path, protocol='binary')
        status = head.split(b'\r\n', 1)[0].decode('latin-1') if head else ''
        if not status.startswith('HTTP/1.1 101'):
            return status, None
        try:
            return status, recv_frame(sock)[1]
        except (ConnectionError, socket.timeout):
            return status, None


# ------------------------------------------------------------------------- Chromium

class Chromium(object):
    def __init__(self, url, log_path=None):
        self.url = url
        self.profile = tempfile.mkdtemp(prefix='kvmops-test-chromium-')
        self.log = open(log_path or os.path.join(self.profile, 'chromium.log'), 'wb')
        self.proc = subprocess.Popen(
            [CHROMIUM] + FLAGS + ['--user-data-dir=' + self.profile, '--remote-debugging-port=0',
                                  url], stdout=self.log, stderr=subprocess.STDOUT)
        self.sock = None
        self._id = 0

    def connect(self, timeout=60):
        deadline = time.time() + timeout
        port_file = os.path.join(self.profile, 'DevToolsActivePort')
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError('chromium did not open its DevTools port (exit %s)'
                                   % self.proc.poll())
            time.sleep(0.2)
        port = int(open(port_file).read().split()[0])
        page = None
        while page is None:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
            c.request('GET', '/json/list')
            pages = [t for t in json.loads(c.getresponse().read()) if t.get('type') == 'page']
            c.close()
            page = pages[0] if pages else None
            if page is None:
                if time.time() > deadline:
                    raise RuntimeError('chromium has no page')
                time.sleep(0.2)
        ws_path = page['webSocketDebuggerUrl'].split(str(port), 1)[1]
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=30)
        head = _handshake(self.sock, '127.0.0.1:%d' % port, ws_path)
        assert head.startswith(b'HTTP/1.1 101'), head
        return self

    def call(self, method, **params):
        self._id += 1
        send_frame(self.sock, json.dumps({'id': self._id, 'method': method, 'params': params}))
        while True:
            dummy, data = recv_frame(self.sock)
            msg = json.loads(data)
            if msg.get('id') == self._id:
                if 'error' in msg:
                    raise RuntimeError('%s: %s' % (method, msg['error']))
                return msg['result']

    def evaluate(self, expression):
        res = self.call('Runtime.evaluate', expression=expression, returnByValue=True)
        return res.get('result', {}).get('value')

    def wait_for(self, expression, timeout=60, poll=0.5):
        """The first truthy value of expression, or None after timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(poll)
        return None

    def screenshot(self, path):
        data = base64.b64decode(self.call('Page.captureScreenshot', format='png')['data'])
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


@contextlib.contextmanager
def chromium(url, log_path=None):
    browser = Chromium(url, log_path)
    try:
        yield browser.connect()
    finally:
        browser.close()
