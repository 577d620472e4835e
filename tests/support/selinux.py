"""What the selinux_virt_dir integration tests share: the SELinux CLIs read directly (not
through the module's parsers), the policy-store guard that puts every rule and boolean back,
and a run with the SELinux tools hidden."""
import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile

from . import paths
from .ansible_run import _run, ansible_env

SEMANAGE = shutil.which('semanage') or '/usr/sbin/semanage'
BOOLEANS = ('virt_use_nfs', 'virt_use_samba')
SELINUX_LOCK = '/run/kvmops-selinux-tests.lock'
HIDDEN_TOOLS = ('semanage', 'getenforce', 'selinuxenabled', 'restorecon', 'matchpathcon',
                'setsebool', 'getsebool')


def sh(*argv, **kw):
    proc = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                          universal_newlines=True, env=dict(os.environ, LC_ALL='C'), **kw)
    return proc


def local_fcontext():
    """`semanage fcontext -l -C`, as text."""
    proc = sh(SEMANAGE, 'fcontext', '-l', '-C')
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def local_lines_with(text):
    return [line for line in local_fcontext().splitlines() if text in line]


def boolean_values():
    """{name: (running, stored)} from `semanage boolean -l` for the booleans we touch."""
    out = sh(SEMANAGE, 'boolean', '-l').stdout
    values = {}
    for name in BOOLEANS:
        m = re.search(r'^%s\s+\((on|off)\s*,\s*(on|off)\)' % name, out, re.M)
        values[name] = (m.group(1) == 'on', m.group(2) == 'on')
    return values


def local_booleans():
    out = sh(SEMANAGE, 'boolean', '-l', '-C').stdout
    return set(re.findall(r'^(\w+)\s+\(', out, re.M))


def matchpathcon_type(path):
    out = sh('matchpathcon', path).stdout
    return out.rsplit('\t', 1)[-1].strip().split(':')[2] if ':' in out else out.strip()


@contextlib.contextmanager
def store_guard(prefix):
    """Serialise SELinux tests; afterwards remove every rule with the prefix and restore
    booleans, also when the test failed. Yields the booleans as they were."""
    fd = os.open(SELINUX_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    orig_bools = boolean_values()
    orig_local_bools = local_booleans()
    orig_rules = [line for line in local_fcontext().splitlines() if prefix in line]
    assert orig_rules == []
    try:
        yield orig_bools
    finally:
        lines = []
        text = local_fcontext()
        section = 'rules'
        for line in text.splitlines():
            if 'Equivalence' in line:
                section = 'equiv'
            if prefix not in line:
                continue
            if section == 'equiv':
                path, target = [x.strip() for x in line.split(' = ')]
                lines.append('fcontext -d -e %s %s' % (target, path))
            else:
                lines.append("fcontext -d '%s'" % line.split()[0])
        now = boolean_values()
        changed = [n for n in BOOLEANS if now[n][1] != orig_bools[n][1]]
        added_local = local_booleans() - orig_local_bools
        if not orig_local_bools and added_local and added_local <= set(BOOLEANS):
            lines.append('boolean -D')  # back to "no local customisation", exactly as before
        else:
            for n in changed:
                lines.append('boolean -m --%s %s' % ('on' if orig_bools[n][1] else 'off', n))
        try:
            if lines:
                proc = sh(SEMANAGE, 'import', input='\n'.join(lines) + '\n')
                assert proc.returncode == 0, 'clean-up failed: %s\n%s' % (lines, proc.stderr)
            assert [line for line in local_fcontext().splitlines() if prefix in line] == []
            assert boolean_values() == orig_bools
        finally:
            for name in os.listdir('/var/tmp'):
                if name.startswith(prefix):
                    shutil.rmtree(os.path.join('/var/tmp', name), ignore_errors=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def run_without_selinux_tools(tasks):
    """Run tasks with the SELinux tools hidden: /dev/null (not executable) is bind-mounted over
    each of them in a private mount namespace, so the module sees a host without SELinux
    userspace (like Debian/Ubuntu with AppArmor). Nothing outside the namespace is affected."""
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]
    fd, playbook = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump(play, f)
    hide = ' && '.join('mount --bind /dev/null /usr/sbin/%s' % t for t in HIDDEN_TOOLS
                       if os.path.exists('/usr/sbin/' + t))
    cmd = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', hide + ' && exec "$@"',
           'sh', os.path.join(paths.VENV, 'bin', 'ansible-playbook'), '-i', 'localhost,', '-c',
           'local', playbook]
    try:
        return _run(cmd, ansible_env(), 300)
    finally:
        os.unlink(playbook)
