"""Integration tests of selinux_virt_dir against the real SELinux policy store of this machine.

What is real here: Debian's policy store (selinux-policy-default, policycoreutils 3.4), so
`semanage fcontext`/`semanage boolean` really write it and `matchpathcon` answers from it. The
kernel cannot enable SELinux, so the module runs in its "disabled, userspace installed" mode:
it records rules and booleans and skips the relabel.

NOT exercised here: a real enforcing/permissive kernel (restorecon really relabelling files,
`restorecon -n -v` in check mode, running boolean values). That path is covered only with a
fake runner in tests/unit/plugins/module_utils/test_selinux_manager.py. NFS/CIFS detection is
covered in unit tests only (no NFS or CIFS server can run here).

Every test verifies with the SELinux CLIs directly (not through the module's parsers), uses
paths built from the prefix fixture, and its finalizer removes every file-context rule carrying
the prefix and restores the booleans, also when the test fails.
"""
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from support import paths
from support.ansible_run import _run, ansible_env, run_module, run_playbook

SEMANAGE = shutil.which('semanage') or '/usr/sbin/semanage'
BOOLEANS = ('virt_use_nfs', 'virt_use_samba')
SELINUX_LOCK = '/run/kvmops-selinux-tests.lock'
HIDDEN_TOOLS = ('semanage', 'getenforce', 'selinuxenabled', 'restorecon', 'matchpathcon',
                'setsebool', 'getsebool')

pytestmark = pytest.mark.skipif(not os.path.exists(SEMANAGE),
                                reason='SELinux userspace not installed (run testbed/setup.sh)')


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


@pytest.fixture
def selinux_store(prefix):
    """Serialise SELinux tests; afterwards remove every rule with the prefix and restore booleans."""
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


def run(args, check=False):
    result = run_module('selinux_virt_dir', args, check=check, diff=True)
    assert not result.get('failed'), result.get('msg')
    return result


def walk_through_tasks(path):
    """The module's EXAMPLES up to the guide's last step, with /vm-images replaced by path."""
    import yaml
    from ansible_collections.kvmops.hypervisor.plugins.modules import selinux_virt_dir
    walk = []
    for task in yaml.safe_load(selinux_virt_dir.EXAMPLES.replace('/vm-images', path)):
        if task['name'].startswith('Read-only'):
            break
        walk.append(task)
    assert [t['name'].split(' ')[0] for t in walk] == ['semanage', 'What', 'Check', 'The',
                                                       'setsebool']
    return walk


def module_task(args, **keywords):
    task = {'name': 'selinux_virt_dir', 'kvmops.hypervisor.selinux_virt_dir': args, 'diff': True}
    task.update(keywords)
    return task


def run_tasks(tasks, env=None):
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]
    fd, playbook = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump(play, f)
    try:
        doc = run_playbook(playbook, env=env)
    finally:
        os.unlink(playbook)
    return [t['hosts']['localhost'] for t in doc['plays'][0]['tasks']]


def test_walk_through_check_real_rerun_absent(prefix, selinux_store):
    """check mode, the EXAMPLES walk-through for real, check mode again, re-run, absent."""
    orig = selinux_store
    path = '/var/tmp/%svm-images' % prefix
    regex = path + '(/.*)?'
    args = {'path': path, 'setype': 'virt_image_t', 'mode': '0711', 'owner': 'root',
            'group': 'root', 'booleans': {'virt_use_nfs': True, 'virt_use_samba': True}}

    # 1. check mode: reports the change, touches nothing
    r = run(args, check=True)
    assert r['changed'] is True and r['selinux'] == 'disabled'
    assert "fcontext -a -f a -t virt_image_t '%s'" % regex in r['semanage_commands']
    assert 'virt_image_t' in r['diff']['after'] and 'no local rule' in r['diff']['before']
    assert 'would be created' in r['diff']['after']
    assert local_lines_with(prefix) == []
    assert boolean_values() == orig
    assert not os.path.exists(path)

    # 2. for real: the module's EXAMPLES, i.e. the guide's steps, exactly as documented
    results = run_tasks(walk_through_tasks(path))
    assert len(results) == 5 and not any(x.get('failed') for x in results), results
    r = results[0]
    assert r['changed'] is True and r['selinux'] == 'disabled'
    assert r['rule'] == {'regex': regex, 'setype': 'virt_image_t'}
    assert r['relabel_skipped'].startswith('SELinux is disabled')
    assert any('SELinux is disabled' in w for w in r.get('warnings', []))
    assert r['libvirt_security_models'], 'libvirt reports its security drivers'
    assert r['matchpathcon'].split(':')[2] == 'virt_image_t'
    assert results[4]['booleans']['virt_use_nfs']['after'] is True
    assert results[4]['changed'] is (not (orig['virt_use_nfs'][1] and orig['virt_use_samba'][1]))
    # independent verification: the store, matchpathcon, the booleans, the directory
    rules = local_lines_with(prefix)
    assert len(rules) == 1 and rules[0].split()[0] == regex
    assert 'all files' in rules[0] and ':virt_image_t:' in rules[0]
    assert matchpathcon_type(path) == 'virt_image_t'
    assert matchpathcon_type(path + '/guest1.img') == 'virt_image_t'
    assert matchpathcon_type(path + '/sub/dir/disk.qcow2') == 'virt_image_t'
    assert matchpathcon_type(path + 'X/x.img') != 'virt_image_t'
    now = boolean_values()
    assert now['virt_use_nfs'][1] is True and now['virt_use_samba'][1] is True, 'persisted in store'
    assert {'virt_use_nfs', 'virt_use_samba'} <= local_booleans()
    assert os.path.isdir(path) and oct(os.stat(path).st_mode & 0o7777) == '0o711'

    # 3. check mode again, then 4. an idempotent re-run (one playbook, a guest image in place)
    open(os.path.join(path, 'guest1.img'), 'w').close()
    checked, rerun = run_tasks([module_task(args, check_mode=True), module_task(args)])
    assert checked['changed'] is False and checked['semanage_commands'] == []
    assert rerun['changed'] is False and rerun['semanage_commands'] == []
    assert len(local_lines_with(prefix)) == 1

    # 5. absent: check mode first, then for real; the directory and its files stay
    r = run({'path': path, 'state': 'absent'}, check=True)
    assert r['changed'] is True and len(local_lines_with(prefix)) == 1
    r, again = run_tasks([module_task({'path': path, 'state': 'absent'})] * 2)
    assert r['changed'] is True and r['rule'] is None
    assert again['changed'] is False and again['semanage_commands'] == []
    assert local_lines_with(prefix) == []
    assert matchpathcon_type(path + '/guest1.img') != 'virt_image_t'
    assert os.path.exists(os.path.join(path, 'guest1.img'))
    assert boolean_values() == now, 'absent never resets booleans'


def test_guide_rule_then_equivalence_then_type(prefix, selinux_store):
    """Start from the guide's command typed by hand (the module must not add the rule a second
    time: semanage would refuse with rc 1), switch to an equivalence, then to another type, then
    absent. The path has a dot: the hand-typed rule leaves it unescaped, the module's escapes it
    (else the rule would also match "vmXiso")."""
    path = '/var/tmp/%svm.iso' % prefix
    os.makedirs(path)
    proc = sh(SEMANAGE, 'fcontext', '-a', '-t', 'virt_image_t', path + '(/.*)?')
    assert proc.returncode == 0, proc.stderr
    r = run({'path': path})
    assert r['changed'] is False and r['semanage_commands'] == []
    assert r['rule'] == {'regex': path + '(/.*)?', 'setype': 'virt_image_t'}
    assert len(local_lines_with(prefix)) == 1

    # Equivalence: the type rule goes (an equivalence makes it dead), in one transaction.
    args = {'path': path, 'equivalent_to': '/var/lib/libvirt/images'}
    r = run(args)
    assert r['changed'] is True
    assert r['semanage_commands'] == ["fcontext -d -f a '%s(/.*)?'" % path,
                                      'fcontext -a -e /var/lib/libvirt/images %s' % path]
    assert r['rule'] == {'path': path, 'equivalent_to': '/var/lib/libvirt/images'}
    rules, equiv = local_fcontext().split('Equivalence', 1)
    assert prefix not in rules
    assert '%s = /var/lib/libvirt/images' % path in equiv
    assert matchpathcon_type(path + '/win2012.iso') == 'virt_image_t'

    # Re-run (no change); then a type rule again, for read-only media: the equivalence (which
    # would shadow it) goes.
    escaped = path.replace('.', '\\.') + '(/.*)?'
    again, r = run_tasks([module_task(args), module_task({'path': path, 'setype': 'virt_content_t'})])
    assert again['changed'] is False
    assert r['changed'] is True
    assert r['semanage_commands'] == ['fcontext -d -e /var/lib/libvirt/images %s' % path,
                                      "fcontext -a -f a -t virt_content_t '%s'" % escaped]
    lines = local_lines_with(prefix)
    assert len(lines) == 1 and lines[0].split()[0] == escaped and ':virt_content_t:' in lines[0]
    assert matchpathcon_type(path + '/win2012.iso') == 'virt_content_t'
    assert matchpathcon_type(path.replace('vm.iso', 'vmXiso') + '/a.iso') != 'virt_content_t'

    r = run({'path': path, 'state': 'absent'})
    assert r['changed'] is True and local_lines_with(prefix) == []
    assert os.path.isdir(path)


def test_bad_input_and_missing_selinux_change_nothing(prefix, selinux_store):
    base = '/var/tmp/%sbad' % prefix
    cases = [
        ({'path': 'vm-images'}, 'absolute'),
        ({'path': '/'}, 'must not be "/"'),
        ({'path': base + '(/.*)?'}, 'regular expression'),
        ({'path': base + '\n/etc'}, 'newline'),
        ({'path': '/etc'}, 'system directory'),
        ({'path': base, 'booleans': {'virt_use_nsf': True}}, 'did you mean virt_use_nfs'),
        ({'path': base, 'setype': 'virt_image_t; rm'}, 'SELinux type name'),
        ({'path': base, 'owner': prefix + 'nouser'}, 'does not exist'),
        ({'path': base, 'mode': 'rwx'}, 'mode must be octal'),
        ({'path': base, 'setype': 'virt_imgae_t'}, 'virt_imgae_t'),
    ]
    play = [{'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': 'case %d' % i, 'kvmops.hypervisor.selinux_virt_dir': case[0],
                        'ignore_errors': True} for i, case in enumerate(cases)]}]
    fd, playbook = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump(play, f)
    try:
        doc = run_playbook(playbook)
    finally:
        os.unlink(playbook)
    tasks = doc['plays'][0]['tasks']
    for (args, fragment), task in zip(cases, tasks):
        res = task['hosts']['localhost']
        assert res.get('failed') is True, (args, res)
        assert fragment in res['msg'], (fragment, res['msg'])
    # the last case got as far as the store transaction: it says which step and what was done
    last = tasks[-1]['hosts']['localhost']
    assert last['step'] == 'file-context rule and booleans'
    assert 'unchanged' in last['msg'] and last['done'] == []
    assert local_lines_with(prefix) == []
    assert boolean_values() == selinux_store
    assert not os.path.exists(base), 'a wrong type name must not even create the directory'

    # No SELinux userspace at all (tools hidden in a private mount namespace)
    path = '/var/tmp/%snosel' % prefix
    doc = _run_without_selinux_tools([
        {'name': 'absent userspace', 'kvmops.hypervisor.selinux_virt_dir':
            {'path': path, 'create': False, 'booleans': {'virt_use_nfs': True}}},
        {'name': 'required', 'kvmops.hypervisor.selinux_virt_dir':
            {'path': path, 'create': False, 'required': True}, 'ignore_errors': True},
    ])
    first = doc['plays'][0]['tasks'][0]['hosts']['localhost']
    second = doc['plays'][0]['tasks'][1]['hosts']['localhost']
    assert first.get('failed') is not True, first.get('msg')
    assert first['selinux'] == 'absent' and first['changed'] is False
    assert first['rule'] is None and first['booleans'] == {}
    assert 'dac' in first['libvirt_security_models']
    assert second['failed'] is True and 'required=true' in second['msg']
    assert local_lines_with(prefix) == []
    assert boolean_values() == selinux_store
    assert not os.path.exists(path)


def _run_without_selinux_tools(tasks):
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
