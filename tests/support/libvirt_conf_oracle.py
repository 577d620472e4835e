"""libvirt's own configuration parser (virconf.c) as a test oracle, without the daemon.

virsh run as an unprivileged user reads $XDG_CONFIG_HOME/libvirt/libvirt.conf with the same
parser libvirtd uses for qemu.conf; a syntax error is reported as "configuration file syntax
error: PATH:LINE: MESSAGE" before anything connects. The URI is test:///default, so nothing
reaches the real daemon.
"""
import os
import re
import shutil
import subprocess
import tempfile

NOBODY = 65534


def available():
    return bool(shutil.which('virsh') and shutil.which('setpriv')) and os.geteuid() == 0


def libvirt_verdict(text):
    """(accepted, line or None, message) of libvirt's parser for text (str)."""
    d = tempfile.mkdtemp(prefix='kvmops-conf-oracle-')
    try:
        os.makedirs(os.path.join(d, 'libvirt'))
        path = os.path.join(d, 'libvirt', 'libvirt.conf')
        with open(path, 'wb') as f:
            f.write(text.encode('utf-8', 'surrogateescape'))
        for p in (d, os.path.join(d, 'libvirt')):
            os.chmod(p, 0o755)
        os.chmod(path, 0o644)
        env = {'HOME': d, 'XDG_CONFIG_HOME': d, 'XDG_RUNTIME_DIR': d, 'XDG_CACHE_HOME': d,
               'PATH': '/usr/bin:/bin', 'LC_ALL': 'C'}
        proc = subprocess.run(['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY,
                               '--clear-groups', 'virsh', '-c', 'test:///default', 'uri'],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=20, check=False)
        m = re.search(r'configuration file syntax error: [^\n]*?libvirt\.conf:(\d+): ([^\n]*)',
                      proc.stderr)
        if m:
            return False, int(m.group(1)), m.group(2)
        return True, None, proc.stderr.strip()
    finally:
        shutil.rmtree(d, ignore_errors=True)
