"""A server-certificate directory for the console guards' tests: ca-cert.pem, server-cert.pem
and server-key.pem owned root:nogroup (key 0640), in /var/tmp so that QEMU's user of the test
(nobody:nogroup, set in the qemu.conf copy) can enter it. The guards look at presence, size,
type and modes; the files are PEM-shaped, not real certificates (libvirt_pki's tests make
real ones)."""
import contextlib
import os
import shutil
import tempfile

QEMU_USER_CONF = 'user = "nobody"\ngroup = "nogroup"\n'


@contextlib.contextmanager
def server_cert_dir():
    base = tempfile.mkdtemp(prefix='kvmops-test-console-', dir='/var/tmp')
    try:
        os.chmod(base, 0o755)
        cert_dir = os.path.join(base, 'pki')
        os.mkdir(cert_dir)
        os.chmod(cert_dir, 0o755)
        for name in ('ca-cert.pem', 'server-cert.pem', 'server-key.pem'):
            path = os.path.join(cert_dir, name)
            with open(path, 'w') as f:
                f.write('-----BEGIN %s-----\nMIIB\n-----END %s-----\n' % (name, name))
            shutil.chown(path, 'root', 'nogroup')
            os.chmod(path, 0o640 if 'key' in name else 0o644)
        yield cert_dir
    finally:
        shutil.rmtree(base, ignore_errors=True)
