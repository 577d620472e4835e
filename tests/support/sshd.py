"""A private sshd on 127.0.0.1:<free port> with its own host key, client key and config.

Any local account with a usable shell may log in with the client key (one authorized_keys
file for all, StrictModes off), so tests can add a non-root user of their own.
"""
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time

SSHD = '/usr/sbin/sshd'


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextlib.contextmanager
def private_sshd():
    """Yield {'port', 'key'}; the daemon and its files are gone afterwards."""
    d = tempfile.mkdtemp(prefix='kvmops-sshd-')
    os.chmod(d, 0o755)   # non-root users' sshd children read authorized_keys here
    for key in ('host', 'client'):
        subprocess.check_call(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f',
                               os.path.join(d, key)])
    shutil.copy(os.path.join(d, 'client.pub'), os.path.join(d, 'authorized_keys'))
    os.chmod(os.path.join(d, 'authorized_keys'), 0o644)
    port = free_port()
    with open(os.path.join(d, 'sshd_config'), 'w') as f:
        f.write('\n'.join([
            'ListenAddress 127.0.0.1:%d' % port, 'HostKey %s/host' % d,
            'AuthorizedKeysFile %s/authorized_keys' % d, 'PidFile %s/sshd.pid' % d,
            'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
            'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
            'AllowTcpForwarding yes', 'PermitOpen 127.0.0.1:*', '']))
    os.makedirs('/run/sshd', exist_ok=True)   # sshd's privilege separation directory
    proc = subprocess.Popen([SSHD, '-D', '-e', '-f', os.path.join(d, 'sshd_config')],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(('127.0.0.1', port), 0.2):
            break
        time.sleep(0.05)
    try:
        yield {'port': port, 'key': os.path.join(d, 'client')}
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def ssh_vars(sshd, user):
    """Inventory variables that reach this sshd as user with the test's key."""
    return {
        'ansible_host': '127.0.0.1', 'ansible_port': sshd['port'], 'ansible_user': user,
        'ansible_ssh_private_key_file': sshd['key'],
        'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null '
                                   '-o LogLevel=ERROR -o ControlMaster=no',
    }
