"""A root shell on the tiny guest's second serial port, for tests that must act inside the
guest (write and read a disk block) without any network traffic.

The shared tiny guest assets stay as they are: shell_initrd() appends a small cpio archive to
a copy of the tiny initrd (the kernel unpacks concatenated archives in order, later files
win) whose /init starts `sh` on /dev/ttyS1 and then runs the tiny guest's own /init
(unchanged: marker lines, cmdline print, udhcpc, acpid all work as before). The test connects
to the serial port through a unix socket chardev on the host (serial_socket_xml()).
"""
import gzip
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

WRAPPER_INIT = """#!/bin/sh
# kvmops test overlay: a root shell on ttyS1 beside the tiny guest's own init (/init.tiny).
# /dev first: a background job's stdin is /dev/null (the tiny init mounts /dev again: harmless).
/bin/busybox mkdir -p /dev
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox sh -c 'while [ ! -c /dev/ttyS1 ]; do /bin/busybox sleep 0.2; done
  exec /bin/busybox setsid /bin/busybox sh -c "exec /bin/busybox sh </dev/ttyS1 >/dev/ttyS1 2>&1"' &
exec /init.tiny
"""


def shell_initrd(base_initrd, dest_dir, tiny_init=None):
    """Path of a copy of base_initrd whose guest also runs a shell on ttyS1. tiny_init: a
    tiny-guest /init to run instead of the one inside base_initrd (the repository's
    testbed/tiny_guest_init.sh, so a test gets the switches of its own checkout even while the
    shared asset cache holds an older build)."""
    work = tempfile.mkdtemp(prefix='kvmops-shell-initrd-')
    try:
        if tiny_init:
            shutil.copyfile(tiny_init, os.path.join(work, 'init.tiny'))
        else:
            # The tiny guest's own /init, taken from the initrd itself (whatever version it is).
            with gzip.open(base_initrd, 'rb') as f:
                subprocess.run(['cpio', '-i', '--quiet', 'init'], input=f.read(), cwd=work, check=True)
            os.rename(os.path.join(work, 'init'), os.path.join(work, 'init.tiny'))
        with open(os.path.join(work, 'init'), 'w') as f:
            f.write(WRAPPER_INIT)
        os.chmod(os.path.join(work, 'init'), 0o755)
        os.chmod(os.path.join(work, 'init.tiny'), 0o755)
        archive = subprocess.run(['cpio', '-o', '-H', 'newc', '--quiet'], input=b'init\ninit.tiny\n',
                                 cwd=work, stdout=subprocess.PIPE, check=True).stdout
        dest = os.path.join(dest_dir, 'initrd-shell.img')
        with open(base_initrd, 'rb') as src, open(dest, 'wb') as out:
            shutil.copyfileobj(src, out)
            out.write(gzip.compress(archive))
        os.chmod(dest, 0o644)
        return dest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def serial_socket_xml(path):
    """A second serial port (ttyS1) on a unix socket QEMU listens on."""
    return ("<serial type='unix'><source mode='bind' path='%s'/><target port='1'/></serial>" % path)


class SerialShell(object):
    """Run commands in the guest's ttyS1 shell; every wait is bounded."""

    def __init__(self, path, timeout=60.0):
        self.path = path
        self.sock = None
        self.count = 0
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                self.sock = s
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise AssertionError('cannot connect to the guest shell at %s' % path)
                time.sleep(0.2)
        self.sock.settimeout(1.0)

    def run(self, command, timeout=60.0):
        """Output of command (the marker is computed by the guest's shell, so the tty's echo
        of the command line never matches it)."""
        self.count += 1
        marker = 'KVMOPS-DONE-%d' % self.count
        line = 'export PATH=/bin:/sbin; %s; echo KVMOPS-DONE-$((%d+0))\n' % (command, self.count)
        self.sock.sendall(line.encode())
        buf = b''
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            buf += chunk
            text = buf.decode('utf-8', 'replace')
            m = re.search(r'(?m)^%s\r?$' % marker, text)
            if m:
                return text[:m.start()]
        raise AssertionError('no answer from the guest shell within %ss to %r; got %r'
                             % (timeout, command, buf[-2000:]))

    def write_block(self, text):
        """Write 'KVMOPS-DATA-<text>' into the first 512-byte block of /dev/vda, synced."""
        self.run("printf 'KVMOPS-DATA-%%s\\n' %s | dd of=/dev/vda bs=512 count=1 conv=sync "
                 "2>/dev/null; sync" % text)

    def read_block(self):
        """What the first block of /dev/vda says (page cache dropped: read from the disk)."""
        out = self.run('echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 count=1 '
                       '2>/dev/null | head -n 1')
        found = re.findall(r'KVMOPS-DATA-([A-Za-z0-9]+)\r?\n', out)
        return found[-1] if found else None

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def block_in_file(path):
    """The KVMOPS-DATA text at the start of a raw image file, read on the host."""
    with open(path, 'rb') as f:
        head = f.read(512)
    m = re.match(rb'KVMOPS-DATA-([A-Za-z0-9]+)\n', head)
    return m.group(1).decode() if m else None
