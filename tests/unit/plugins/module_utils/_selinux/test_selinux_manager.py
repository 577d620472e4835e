"""Unit tests of the whole selinux_virt_dir flow against a FAKE SELinux host.

Why a fake: this machine's kernel cannot enable SELinux, so the enforcing/permissive path
(restorecon really relabelling, `restorecon -n -v` in check mode, running boolean values) and
the "no SELinux userspace at all" path cannot run here for real. NOT exercised anywhere in this
repository: a real enforcing kernel relabelling files. The disabled-with-userspace path runs for
real in tests/integration/test_selinux_virt_dir.py.

FakeHost answers the commands in the output formats captured from policycoreutils 3.4
(semanage) and libselinux 3.x (restorecon "Relabeled"/"Would relabel"), keeps a policy store
(rules, equivalences, booleans) that `semanage import` changes all-or-nothing, like semanage's
transaction, and keeps file labels that restorecon fixes.
"""
import os
import re
import shlex

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._selinux import virt_dir as se

POLICY = [(r'/var/lib/libvirt/images(/.*)?', 'virt_image_t')]
BOOLEAN_DESCR = {'virt_use_nfs': 'Allow virt to use nfs', 'virt_use_samba': 'Allow virt to use samba',
                 'virt_use_usb': 'Allow virt to use usb'}


class FakeHost(object):
    def __init__(self, mode='enforcing', tools=('getenforce', 'selinuxenabled', 'semanage',
                                                'restorecon', 'matchpathcon')):
        self.mode = mode
        self.tools = set(tools)
        self.rules = {}        # regex -> type (ftype 'all files')
        self.equivs = {}       # path -> target
        self.stored = {'virt_use_nfs': False, 'virt_use_samba': False, 'virt_use_usb': True}
        self.running = dict(self.stored)
        self.labels = {}       # path -> type
        self.calls = []
        self.fail_import = None
        self.restorecon_rc = 0

    # ---- plumbing
    def which(self, name):
        return '/usr/sbin/' + name if name in self.tools else None

    def run(self, argv, data=None):
        tool = os.path.basename(argv[0])
        args = argv[1:]
        self.calls.append((tool, args, data))
        return getattr(self, 'cmd_' + tool)(args, data)

    # ---- policy
    def type_for(self, path):
        for p, t in self.equivs.items():
            if path == p or path.startswith(p + '/'):
                path = t + path[len(p):]
        for regex, t in list(POLICY) + list(self.rules.items()):  # local rules last: they win
            if re.fullmatch(regex, path):
                found = t
        return locals().get('found', 'default_t')

    @staticmethod
    def ctx(t):
        return 'system_u:object_r:%s:s0' % t

    # ---- commands
    def cmd_getenforce(self, args, data):
        return 0, {'enforcing': 'Enforcing', 'permissive': 'Permissive'}.get(self.mode, 'Disabled') + '\n', ''

    def cmd_selinuxenabled(self, args, data):
        return (0 if self.mode in ('enforcing', 'permissive') else 1), '', ''

    def cmd_matchpathcon(self, args, data):
        return 0, ''.join('%s\t%s\n' % (p, self.ctx(self.type_for(p))) for p in args), ''

    def cmd_semanage(self, args, data):
        if args == ['fcontext', '-l', '-C']:
            out = ''
            if self.rules:
                out += 'SELinux fcontext                                   type               Context\n\n'
                for r, t in self.rules.items():
                    out += '%-50s %-18s %s \n' % (r, 'all files', self.ctx(t))
            if self.equivs:
                out += '\nSELinux Local fcontext Equivalence \n\n'
                for p, t in self.equivs.items():
                    out += '%s = %s\n' % (p, t)
            return 0, out, ''
        if args == ['boolean', '-l']:
            out = 'SELinux boolean                State  Default Description\n\n'
            for n in sorted(self.stored):
                out += '%-30s (%-5s,%5s)  %s\n' % (n, 'on' if self.running[n] else 'off',
                                                   'on' if self.stored[n] else 'off', BOOLEAN_DESCR[n])
            return 0, out, ''
        if args == ['import']:
            if self.fail_import:
                return 1, '', self.fail_import
            rules, equivs, stored = dict(self.rules), dict(self.equivs), dict(self.stored)
            for line in data.splitlines():
                a = shlex.split(line)
                if a[:2] == ['fcontext', '-a'] and '-e' in a:
                    equivs[a[-1]] = a[a.index('-e') + 1]
                elif a[:2] == ['fcontext', '-d'] and '-e' in a:
                    del equivs[a[-1]]
                elif a[:2] == ['fcontext', '-a']:
                    if a[-1] in rules:
                        return 1, '', 'ValueError: File context for %s already defined\n' % a[-1]
                    rules[a[-1]] = a[a.index('-t') + 1]
                elif a[:2] == ['fcontext', '-m']:
                    rules[a[-1]] = a[a.index('-t') + 1]
                elif a[:2] == ['fcontext', '-d']:
                    del rules[a[-1]]
                elif a[:2] == ['boolean', '-m']:
                    if a[-1] not in stored:
                        return 1, '', 'ValueError: Boolean %s is not defined\n' % a[-1]
                    stored[a[-1]] = a[2] == '--on'
                else:
                    raise AssertionError('unexpected import line %r' % line)
            self.rules, self.equivs, self.stored = rules, equivs, stored  # commit
            if self.mode in ('enforcing', 'permissive'):
                self.running.update(stored)
            return 0, '', 'libsemanage.add_user: user sddm not in password file\n'
        raise AssertionError('unexpected semanage %r' % args)

    def cmd_restorecon(self, args, data):
        assert args[:2] == ['-R', '-v'], 'one recursive restorecon call'
        dry = '-n' in args
        root = args[-1]
        lines = []
        if self.mode in ('enforcing', 'permissive'):
            for p in sorted(self.labels):
                if p == root or p.startswith(root + '/'):
                    want = self.type_for(p)
                    if self.labels[p] != want:
                        verb = 'Would relabel' if dry else 'Relabeled'
                        lines.append('%s %s from %s to %s' % (verb, p, self.ctx(self.labels[p]),
                                                              self.ctx(want)))
                        if not dry:
                            self.labels[p] = want
        return self.restorecon_rc, '\n'.join(lines) + ('\n' if lines else ''), ''

    def semanage_changes(self):
        return [c for c in self.calls if c[0] == 'semanage' and c[1] == ['import']]


class FakeDir(object):
    def __init__(self, path, create=True):
        self.path = path
        self.create = create
        self.check_mode = False

    @property
    def exists(self):
        return os.path.isdir(self.path)

    def describe(self, planned=False):
        if planned:
            return 'would be updated' if self.exists else 'would be created'
        return 'present' if self.exists else 'absent'

    def ensure(self):
        if self.exists or not self.create:
            return False
        if not self.check_mode:
            os.makedirs(self.path)
        return True


def local_mount(path):
    return {'fstype': 'ext4', 'mount_point': '/', 'source': '/dev/sda1'}, path


def nfs_mount(path):
    return {'fstype': 'nfs4', 'mount_point': os.path.dirname(path), 'source': 'filer:/vm'}, path


def cifs_mount(path):
    return {'fstype': 'cifs', 'mount_point': os.path.dirname(path), 'source': '//nas/vm'}, path


def params(path, **kw):
    p = dict(path=path, state='present', setype=None, equivalent_to=None, relabel=True,
             booleans={}, auto_booleans=True, required=False)
    p.update(kw)
    return p


def run(host, p, check=False, mount=local_mount, directory='auto'):
    if directory == 'auto':
        directory = FakeDir(p['path']) if p['state'] == 'present' else None
    if directory is not None:
        directory.check_mode = check
    cli = se.SELinuxCLI(host.run, host.which)
    mgr = se.VirtDirManager(cli, p, check, directory=directory, mount_lookup=mount)
    result = mgr.run()
    return result, mgr


@pytest.fixture
def images(tmp_path):
    """An image directory with two files labelled default_t (as after `mkdir` + `cp`)."""
    d = tmp_path / 'vm-images'
    d.mkdir()
    (d / 'guest1.img').write_text('x')
    (d / 'guest2.img').write_text('x')
    return str(d)


def label_tree(host, path, t='default_t'):
    for p in [path] + [os.path.join(path, f) for f in os.listdir(path)]:
        host.labels[p] = t


# ------------------------------------------------------------------ enforcing / permissive

@pytest.mark.parametrize('mode', ['enforcing', 'permissive'])
def test_enforcing_check_real_check_rerun(images, mode):
    host = FakeHost(mode)
    label_tree(host, images)
    p = params(images, booleans={'virt_use_nfs': True})

    r, dummy = run(host, p, check=True)
    assert r['changed'] is True and r['selinux'] == mode
    assert host.semanage_changes() == [], 'check mode must not touch the store'
    assert r['relabelled_count'] is None  # the rule does not exist yet: cannot be predicted
    assert r['semanage_commands'] == ["fcontext -a -f a -t virt_image_t '%s(/.*)?'" % images,
                                      'boolean -m --on virt_use_nfs']
    assert r['booleans']['virt_use_nfs'] == {'before': False, 'after': True, 'running_before': False}

    r, dummy = run(host, p)
    assert r['changed'] is True
    assert len(host.semanage_changes()) == 1, 'rule and booleans in ONE transaction'
    assert host.rules == {'%s(/.*)?' % images: 'virt_image_t'}
    assert host.stored['virt_use_nfs'] is True and host.running['virt_use_nfs'] is True
    assert sorted(r['relabelled']) == sorted([images, images + '/guest1.img', images + '/guest2.img'])
    assert r['relabelled_count'] == 3
    assert set(host.labels.values()) == {'virt_image_t'}
    assert r['matchpathcon'] == 'system_u:object_r:virt_image_t:s0'
    assert 'virt_image_t' in r['diff']['after'] and 'virt_image_t' not in r['diff']['before']
    assert 'boolean virt_use_nfs: off' in r['diff']['before']
    assert 'boolean virt_use_nfs: on' in r['diff']['after']
    restorecons = [c for c in host.calls if c[0] == 'restorecon']
    assert len(restorecons) == 1 and '-n' not in restorecons[0][1]

    calls_before = len(host.calls)
    r, dummy = run(host, p, check=True)
    assert r['changed'] is False and r['relabelled_count'] == 0
    assert [c for c in host.calls[calls_before:] if c[0] == 'restorecon'][0][1][:3] == ['-R', '-v', '-n']

    r, dummy = run(host, p)
    assert r['changed'] is False
    assert len(host.semanage_changes()) == 1


def test_mislabelled_file_is_found_in_check_mode_and_fixed(images):
    host = FakeHost('enforcing')
    label_tree(host, images)
    run(host, params(images))
    host.labels[images + '/moved-in.img'] = 'user_home_t'  # `mv` keeps the old label

    r, dummy = run(host, params(images), check=True)
    assert r['changed'] is True and r['relabelled'] == [images + '/moved-in.img']
    assert host.labels[images + '/moved-in.img'] == 'user_home_t'

    r, dummy = run(host, params(images))
    assert r['changed'] is True and r['relabelled_count'] == 1
    assert host.labels[images + '/moved-in.img'] == 'virt_image_t'
    assert run(host, params(images))[0]['changed'] is False


def test_relabelled_list_is_capped_but_counted(images):
    host = FakeHost('enforcing')
    for i in range(250):
        host.labels['%s/f%03d.img' % (images, i)] = 'default_t'
    r, dummy = run(host, params(images))
    assert len(r['relabelled']) == se.RELABEL_LIST_CAP
    assert r['relabelled_count'] == 250
    assert len([c for c in host.calls if c[0] == 'restorecon']) == 1


def test_relabel_false_and_absent_relabels_back(images):
    host = FakeHost('enforcing')
    label_tree(host, images)
    r, dummy = run(host, params(images, relabel=False))
    assert r['relabel_skipped'] == 'relabel=false' and host.labels[images] == 'default_t'
    run(host, params(images))
    assert host.labels[images] == 'virt_image_t'

    r, dummy = run(host, params(images, state='absent'), check=True)
    assert r['changed'] is True and host.rules
    r, dummy = run(host, params(images, state='absent'))
    assert r['changed'] is True and host.rules == {}
    assert r['relabelled_count'] == 3 and host.labels[images] == 'default_t'
    assert os.path.isdir(images) and os.path.exists(images + '/guest1.img'), 'never deletes'
    assert r['rule'] is None
    assert run(host, params(images, state='absent'))[0]['changed'] is False


def test_setype_change_and_equivalence(images):
    host = FakeHost('enforcing')
    label_tree(host, images)
    run(host, params(images))
    r, dummy = run(host, params(images, setype='virt_content_t'))
    assert r['semanage_commands'] == ["fcontext -m -f a -t virt_content_t '%s(/.*)?'" % images]
    assert host.labels[images + '/guest1.img'] == 'virt_content_t'

    r, dummy = run(host, params(images, equivalent_to='/var/lib/libvirt/images'))
    assert host.rules == {} and host.equivs == {images: '/var/lib/libvirt/images'}
    assert r['rule'] == {'path': images, 'equivalent_to': '/var/lib/libvirt/images'}
    assert host.labels[images + '/guest1.img'] == 'virt_image_t'
    assert run(host, params(images, equivalent_to='/var/lib/libvirt/images'))[0]['changed'] is False


def test_policy_already_labels_path(tmp_path):
    host = FakeHost('enforcing')
    path = '/var/lib/libvirt/images'
    r, dummy = run(host, params(path, relabel=False), directory=None)
    assert r['changed'] is False and r['rule_source'] == 'policy'
    assert host.semanage_changes() == []


def test_policy_regex_with_other_type_is_overridden_with_modify():
    host = FakeHost('enforcing')
    host.rules = {}
    path = '/var/lib/libvirt/images'

    # the policy has exactly this regex: semanage -a says "already defined"; -m overrides it
    def fake_import(lines):
        if any(line.startswith('fcontext -a') for line in lines):
            return 1, '', 'ValueError: File context for %s(/.*)? already defined' % path
        host.rules[se.path_regex(path)] = 'virt_content_t'
        return 0, '', ''
    cli = se.SELinuxCLI(host.run, host.which)
    cli.semanage_import = fake_import
    mgr = se.VirtDirManager(cli, params(path, setype='virt_content_t', relabel=False), False,
                            mount_lookup=local_mount)
    r = mgr.run()
    assert r['semanage_commands'] == ["fcontext -m -f a -t virt_content_t '%s(/.*)?'" % path]


# ------------------------------------------------------------------ NFS / CIFS

@pytest.mark.parametrize('mount,boolean', [(nfs_mount, 'virt_use_nfs'), (cifs_mount, 'virt_use_samba')])
def test_network_fs_turns_boolean_on_and_skips_relabel(images, mount, boolean):
    host = FakeHost('enforcing')
    label_tree(host, images, 'nfs_t')
    r, mgr = run(host, params(images), mount=mount)
    assert host.stored[boolean] is True
    assert r['booleans'][boolean]['after'] is True
    assert any(boolean in n for n in r['notes'])
    assert r['network_fs']['kind'] in ('nfs', 'cifs')
    assert 'cannot carry SELinux labels' in r['relabel_skipped']
    assert [c for c in host.calls if c[0] == 'restorecon'] == []
    assert run(host, params(images), mount=mount)[0]['changed'] is False


def test_explicit_false_boolean_wins_with_warning(images):
    host = FakeHost('enforcing')
    r, mgr = run(host, params(images, booleans={'virt_use_nfs': False}), mount=nfs_mount)
    assert host.stored['virt_use_nfs'] is False
    assert any('Permission denied' in w for w in mgr.warnings)


def test_auto_booleans_off(images):
    host = FakeHost('enforcing')
    r, dummy = run(host, params(images, auto_booleans=False), mount=nfs_mount)
    assert r['booleans'] == {} and host.stored['virt_use_nfs'] is False


# ------------------------------------------------------------------ failures

def test_unknown_boolean_fails_before_any_change(tmp_path):
    host = FakeHost('enforcing')
    path = str(tmp_path / 'new-dir')
    with pytest.raises(se.SELinuxError) as exc:
        run(host, params(path, booleans={'virt_use_nsf': True}))
    assert 'did you mean virt_use_nfs' in exc.value.msg
    assert host.semanage_changes() == [] and not os.path.exists(path)


def test_store_failure_says_step_and_what_was_done(tmp_path):
    host = FakeHost('enforcing')
    host.fail_import = 'ValueError: Type virt_imgae_t is invalid, must be a file or device type\n'
    path = str(tmp_path / 'new-dir')
    with pytest.raises(se.SELinuxError) as exc:
        run(host, params(path, setype='virt_imgae_t'))
    e = exc.value
    assert e.step == 'file-context rule and booleans'
    assert 'virt_imgae_t is invalid' in e.msg and 'unchanged' in e.msg
    assert e.done == [] and 'Already done before it: nothing' in e.msg
    assert not os.path.exists(path), 'the store goes first: a wrong type changes nothing at all'
    assert host.rules == {}
    assert [c for c in host.calls if c[0] == 'restorecon'] == [], 'no relabel after a failed store'


def test_relabel_failure_says_rule_and_booleans_are_in_place(images):
    host = FakeHost('enforcing')
    host.restorecon_rc = 255
    with pytest.raises(se.SELinuxError) as exc:
        run(host, params(images, booleans={'virt_use_samba': True}))
    e = exc.value
    assert e.step == 'relabel'
    assert any('virt_image_t' in d and 'virt_use_samba' in d for d in e.done)
    assert host.rules and host.stored['virt_use_samba'] is True


def test_enabled_but_semanage_missing_fails_with_package_hint(images):
    host = FakeHost('enforcing', tools=('getenforce', 'restorecon', 'matchpathcon'))
    with pytest.raises(se.SELinuxError) as exc:
        run(host, params(images))
    assert 'semanage' in exc.value.msg and 'policycoreutils-python-utils' in exc.value.msg


# ------------------------------------------------------------------ disabled / absent

def test_disabled_records_rule_and_booleans_without_relabel(images):
    host = FakeHost('disabled')
    label_tree(host, images)
    r, mgr = run(host, params(images, booleans={'virt_use_nfs': True}))
    assert r['selinux'] == 'disabled' and r['changed'] is True
    assert host.rules and host.stored['virt_use_nfs'] is True
    assert 'disabled' in r['relabel_skipped']
    assert [c for c in host.calls if c[0] == 'restorecon'] == []
    assert any('SELinux is disabled' in w for w in mgr.warnings)
    r, mgr = run(host, params(images, booleans={'virt_use_nfs': True}))
    assert r['changed'] is False and mgr.warnings == []


def test_no_userspace_changes_nothing(tmp_path):
    # The "no SELinux userspace at all" path (a Debian/Ubuntu host with AppArmor): no tool is
    # found. Tested here with the fake runner; see also the integration test that hides the
    # real tools in a private mount namespace.
    host = FakeHost('disabled', tools=())
    path = str(tmp_path / 'imgs')
    r, dummy = run(host, params(path, booleans={'virt_use_nfs': True}))
    assert r['selinux'] == 'absent'
    assert host.calls == []
    assert r['rule'] is None and r['booleans'] == {}
    assert any('AppArmor' in n for n in r['notes'])
    assert r['changed'] is True and os.path.isdir(path)  # the directory itself is still managed


def test_no_userspace_required_fails(tmp_path):
    host = FakeHost('disabled', tools=())
    with pytest.raises(se.SELinuxError) as exc:
        run(host, params(str(tmp_path / 'x'), required=True))
    assert 'required=true' in exc.value.msg and 'policycoreutils' in exc.value.msg
    assert not os.path.exists(str(tmp_path / 'x'))


def test_semanage_without_policy_store_counts_as_absent(tmp_path):
    host = FakeHost('disabled')
    host.cmd_semanage = lambda args, data: (1, '', 'ValueError: SELinux policy is not managed or '
                                                   'store cannot be accessed.\n')
    r, mgr = run(host, params(str(tmp_path / 'x')))
    assert r['selinux'] == 'absent'
    assert any('cannot read a policy store' in w for w in mgr.warnings)


def test_check_mode_with_missing_directory_creates_nothing(tmp_path):
    host = FakeHost('enforcing')
    path = str(tmp_path / 'later')
    r, dummy = run(host, params(path), check=True)
    assert r['changed'] is True and not os.path.exists(path)
    assert 'would be created' in r['diff']['after']
    assert host.semanage_changes() == []
