"""selinux_virt_dir against the real SELinux policy store of this machine: the guide's walk-
through (check mode, real, re-run, absent) and moving between rules. Bad input and a host
without SELinux userspace: test_selinux_virt_dir_refusals.py.

What is real here: Debian's policy store (selinux-policy-default, policycoreutils 3.4), so
`semanage fcontext`/`semanage boolean` really write it and `matchpathcon` answers from it. The
kernel cannot enable SELinux, so the module runs in its "disabled, userspace installed" mode:
it records rules and booleans and skips the relabel.

NOT exercised here: a real enforcing/permissive kernel (restorecon really relabelling files,
`restorecon -n -v` in check mode, running boolean values). That path is covered only with a
fake runner in tests/unit/plugins/module_utils/_selinux/test_selinux_manager.py. NFS/CIFS
detection is covered in unit tests only (no NFS or CIFS server can run here).

Every test verifies with the SELinux CLIs directly (not through the module's parsers), uses
paths built from the prefix fixture, and the selinux_store fixture (tests/support/selinux.py)
removes every file-context rule carrying the prefix and restores the booleans, also when the
test fails.
"""
import os

import pytest

from support.ansible_run import run_module, run_tasks
from support.selinux import (SEMANAGE, boolean_values, local_booleans, local_fcontext,
                             local_lines_with, matchpathcon_type, sh)

pytestmark = pytest.mark.skipif(not os.path.exists(SEMANAGE),
                                reason='SELinux userspace not installed (run testbed/setup.sh)')


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
