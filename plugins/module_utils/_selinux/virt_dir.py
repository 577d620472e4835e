# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SELinux file contexts and booleans for libvirt image directories, through the SELinux CLIs.

Private to the collection: no API promise.

The tools (getenforce, selinuxenabled, semanage, restorecon, matchpathcon) are driven as
commands, never through the Python bindings, so this works from whatever interpreter Ansible
picked (the bindings import only in the distribution's own Python). Every command goes through
an injected runner ``run(argv, data=None) -> (rc, stdout, stderr)`` and an injected
``which(name) -> path or None``, so the whole flow is unit-testable with a fake runner.

Store changes are made in ONE ``semanage import`` transaction (file-context rule first, then
booleans): semanage commits it all or nothing, so a failure never leaves half a change, and a
run costs one policy rebuild (~1 s) instead of one per change.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import difflib
import os
import re

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import DEFAULT_URI
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import locality as _locality
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.manager import ManagerBase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import capabilities
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import connection as _conn
from ansible_collections.kvmops.hypervisor.plugins.module_utils._host import mountinfo as _mountinfo

C_LOCALE = {'LANG': 'C', 'LC_ALL': 'C', 'LC_MESSAGES': 'C'}

# What the distributions call the packages that carry each tool.
PACKAGE_HINT = (
    "Install the SELinux userspace on the managed host: RHEL/Fedora: dnf install "
    "policycoreutils policycoreutils-python-utils libselinux-utils; Debian/Ubuntu: apt install "
    "policycoreutils policycoreutils-python-utils selinux-utils selinux-policy-default."
)

RELABEL_LIST_CAP = 100

FTYPES = ('all files', 'regular file', 'directory', 'character device', 'block device',
          'socket', 'symbolic link', 'named pipe')

# Characters that change the meaning of a file-context regular expression. '.' is allowed and
# escaped ('\.'); the others would make a rule that labels something other than the path.
_REGEX_META = set('\\^$*+?()[]{}|')
# Characters that would break the rule line (file_contexts is whitespace-separated; semanage
# import lines are quoted).
_BAD_CHARS = set('\'"')

# Labelling one of these (and everything below it) as an image directory breaks the host.
FORBIDDEN_PATHS = frozenset([
    '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32',
    '/proc', '/root', '/run', '/sbin', '/sys', '/tmp', '/usr', '/usr/bin', '/usr/lib',
    '/usr/local', '/usr/sbin', '/usr/share', '/var', '/var/lib', '/var/log', '/var/run',
    '/var/tmp', '/var/lib/libvirt',
])

_FCONTEXT_LINE = re.compile(r'^(\S+)\s+(%s)\s+(\S+)\s*$' % '|'.join(re.escape(t) for t in FTYPES))
_EQUIV_LINE = re.compile(r'^(\S+)\s+=\s+(\S+)\s*$')
_BOOLEAN_LINE = re.compile(r'^(\S+)\s+\(\s*(on|off)\s*,\s*(on|off)\s*\)\s*(.*)$')
_GETSEBOOL_LINE = re.compile(r'^(\S+)\s+-->\s+(on|off)(?:\s+pending:\s+(on|off))?\s*$')
# libselinux >= 2.5 (selinux_restorecon): "Relabeled P from A to B", with -n "Would relabel P
# from A to B"; older restorecon: "restorecon reset P context A->B".
_RESTORECON_LINES = (
    re.compile(r'^(?:Relabeled|Would relabel)\s+(.+?)\s+from\s+\S+\s+to\s+\S+\s*$'),
    re.compile(r'^(?:restorecon|setfiles) reset\s+(.+?)\s+context\s+\S+\s*$'),
)


class SELinuxError(KvmopsError):
    """A failure with a message that says what was wrong and how to fix it. Caught by
    VirtDirManager (a semanage that cannot read a policy store: store_error in details)."""

    @property
    def details(self):
        return self.result

    @classmethod
    def failed_step(cls, step, msg, done, **details):
        """A failure while changing the system: which step failed and what was already done
        (in the message, and as .step, .done and the result fields step, done)."""
        done_text = '; '.join(done) if done else 'nothing'
        full = 'Step "%s" failed: %s Already done before it: %s.' % (step, msg, done_text)
        exc = cls(full, step=step, done=list(done), **details)
        exc.step = step
        exc.done = list(done)
        return exc


# ---------------------------------------------------------------- input validation

def validate_path(path, option='path'):
    """Return the path without trailing slashes, or raise ValueError saying what is wrong."""
    if not isinstance(path, str) or not path:
        raise ValueError('%s must be a non-empty absolute path.' % option)
    if any(c in path for c in '\n\r\t') or any(ord(c) < 32 for c in path):
        raise ValueError('%s must not contain newlines or control characters: %r.' % (option, path))
    if not path.startswith('/'):
        raise ValueError('%s must be an absolute path (start with /), got %r.' % (option, path))
    stripped = path.rstrip('/') or '/'
    if stripped == '/':
        raise ValueError('%s must not be "/": a rule for it would relabel the whole file system.'
                         % option)
    if any(c.isspace() for c in stripped):
        raise ValueError('%s must not contain whitespace (file-context rules are whitespace '
                         'separated): %r. Use a path without spaces.' % (option, path))
    bad = sorted(set(c for c in stripped if c in _REGEX_META or c in _BAD_CHARS))
    if bad:
        raise ValueError('%s %r contains %s, which would make a file-context regular expression '
                         'match other paths (or break the rule). Use a path without these '
                         'characters.' % (option, path, ' '.join(bad)))
    parts = stripped.split('/')[1:]
    if any(p in ('', '.', '..') for p in parts):
        raise ValueError('%s must be a normalised path (no "//", "/./" or "/../"), got %r.'
                         % (option, path))
    if stripped in FORBIDDEN_PATHS:
        raise ValueError('%s %s is a system directory; labelling it and everything below it for '
                         'libvirt images would break the host. Use a dedicated directory such '
                         'as /vm-images.' % (option, stripped))
    return stripped


_NAME = re.compile(r'^[A-Za-z0-9_]+$')
_SYMBOLIC_MODE = re.compile(r'^[ugoa]*[-+=]([rwxXst]*|[ugo])(,[ugoa]*[-+=]([rwxXst]*|[ugo]))*$')


def normalize_params(p):
    """The manager's params from the module's options; SELinuxError for bad input, before
    anything is read or changed."""
    # The labels, rules and directory are this host's; the security drivers reported must be
    # this host's libvirt's too (issue 26).
    _locality.require_local(p.get('uri', DEFAULT_URI), [
        ('path=%s' % p.get('path'), 'is labelled (and created) with SELinux rules')])
    try:
        path = validate_path(p['path'])
        equivalent_to = None
        if p.get('equivalent_to') is not None:
            equivalent_to = validate_path(p['equivalent_to'], option='equivalent_to')
            if equivalent_to == path or equivalent_to.startswith(path + '/') \
                    or path.startswith(equivalent_to + '/'):
                raise ValueError('equivalent_to (%s) must not be path (%s), inside it or '
                                 'contain it.' % (equivalent_to, path))
    except ValueError as exc:
        raise SELinuxError(str(exc))
    if p.get('setype') is not None and not _NAME.match(p['setype']):
        raise SELinuxError('setype must be an SELinux type name such as virt_image_t or '
                           'virt_content_t, got %r.' % p['setype'])
    booleans = {}
    for name, value in (p.get('booleans') or {}).items():
        if not _NAME.match(str(name)):
            raise SELinuxError('booleans: %r is not an SELinux boolean name (letters, digits, '
                               'underscores), e.g. virt_use_nfs.' % (name,))
        try:
            booleans[name] = boolean(value, strict=True)
        except TypeError:
            raise SELinuxError('booleans: the value of %s must be true or false, got %r.'
                               % (name, value))
    # Directory settings are checked now too: nothing may fail after the store has changed.
    if p['state'] == 'present':
        check_directory_settings(p.get('owner'), p.get('group'), p.get('mode'))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise SELinuxError('%s exists and is not a directory. Point path at a directory, or '
                           'move the file away.' % path)
    return dict(path=path, state=p['state'], setype=p.get('setype'),
                equivalent_to=equivalent_to, relabel=p.get('relabel', True), booleans=booleans,
                auto_booleans=p.get('auto_booleans', True), required=p.get('required', False))


def check_directory_settings(owner, group, mode):
    """SELinuxError for an unknown owner/group or a malformed mode."""
    import grp
    import pwd
    checks = (('owner', owner, pwd.getpwnam, 'getent passwd'),
              ('group', group, grp.getgrnam, 'getent group'))
    for option, value, lookup, hint in checks:
        if value is None or str(value).isdigit():
            continue
        try:
            lookup(value)
        except KeyError:
            raise SELinuxError('%s: %s does not exist on this host (%s lists them). Create it '
                               'first or pick an existing one.' % (option, value, hint))
    if mode is None or isinstance(mode, int):
        return
    mode = str(mode)
    if not (re.match(r'^0?[0-7]{3,4}$', mode) or _SYMBOLIC_MODE.match(mode)):
        raise SELinuxError("mode must be octal such as '0755' or symbolic such as "
                           "'u=rwx,g=rx,o=rx', got %r." % mode)


def libvirt_security_models(uri):
    """Security drivers from libvirt's host capabilities, or None when libvirt does not answer
    (they are only reported: where SELinux is off, libvirt confines guests with these)."""
    if not _conn.HAS_LIBVIRT:
        return None
    try:
        with _conn.connection(uri, read_only=True) as conn:
            return capabilities.read(conn).security_models()
    except Exception:  # pylint: disable=broad-except  # only reported, never needed
        return None


def path_regex(path):
    """The guide's rule for a directory and everything below it: '<path>(/.*)?', dots escaped."""
    return path.replace('.', '\\.') + '(/.*)?'


def regex_variants(path):
    """Regexes that mean our rule: the escaped one we write, and the unescaped one the guide's
    command gives for a path with dots (recognised so a hand-made rule is not duplicated)."""
    ours = path_regex(path)
    raw = path + '(/.*)?'
    return [ours] if raw == ours else [ours, raw]


def context_type(context):
    """'virt_image_t' from 'system_u:object_r:virt_image_t:s0'; None for '<<None>>' and junk."""
    if not context:
        return None
    parts = context.split(':')
    return parts[2] if len(parts) >= 3 else None


# ---------------------------------------------------------------- parsers

def parse_fcontext_list(text):
    """Parse `semanage fcontext -l [-C]`.

    Returns {'rules': [{'regex', 'ftype', 'context', 'setype'}], 'equivalences': [(path,
    target)], 'dist_equivalences': [(path, target)]}. With -C only local customisations are
    listed: rules under "SELinux fcontext", equivalences under "SELinux Local fcontext
    Equivalence".
    """
    result = {'rules': [], 'equivalences': [], 'dist_equivalences': []}
    section = 'rules'
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith('SELinux '):
            if 'Equivalence' in line:
                section = 'dist_equivalences' if 'Distribution' in line else 'equivalences'
            else:
                section = 'rules'
            continue
        if section == 'rules':
            m = _FCONTEXT_LINE.match(line)
            if m:
                result['rules'].append({'regex': m.group(1), 'ftype': m.group(2),
                                        'context': m.group(3),
                                        'setype': context_type(m.group(3))})
        else:
            m = _EQUIV_LINE.match(line)
            if m:
                result[section].append((m.group(1), m.group(2)))
    return result


def parse_semanage_booleans(text):
    """Parse `semanage boolean -l`: {name: {'state': runtime bool, 'default': stored bool,
    'description': str}}. 'default' is the value in the policy store (local changes included),
    i.e. the persistent value; 'state' the running kernel's (equal to it when disabled)."""
    result = {}
    for line in text.splitlines():
        m = _BOOLEAN_LINE.match(line.strip())
        if m:
            result[m.group(1)] = {'state': m.group(2) == 'on', 'default': m.group(3) == 'on',
                                  'description': m.group(4).strip()}
    return result


def parse_getsebool(text):
    """Parse `getsebool -a`: {name: {'state': bool, 'pending': bool or None}}."""
    result = {}
    for line in text.splitlines():
        m = _GETSEBOOL_LINE.match(line.strip())
        if m:
            pending = m.group(3)
            result[m.group(1)] = {'state': m.group(2) == 'on',
                                  'pending': None if pending is None else pending == 'on'}
    return result


def parse_restorecon(text):
    """Paths named by `restorecon -v` / `restorecon -n -v` output, in order."""
    paths = []
    for line in text.splitlines():
        line = line.strip()
        for pattern in _RESTORECON_LINES:
            m = pattern.match(line)
            if m:
                paths.append(m.group(1))
                break
    return paths


def parse_matchpathcon(text):
    """Parse `matchpathcon P...` lines 'P<TAB>context' into {P: context}."""
    result = {}
    for line in text.splitlines():
        if '\t' in line:
            path, context = line.rsplit('\t', 1)
            result[path.strip()] = context.strip()
    return result


# ---------------------------------------------------------------- the command-line tools

class SELinuxCLI(object):
    """The SELinux tools on the managed host, behind an injected runner."""

    TOOLS = ('getenforce', 'selinuxenabled', 'semanage', 'restorecon', 'matchpathcon')

    def __init__(self, run, which, selinuxfs='/sys/fs/selinux'):
        self._run = run
        self._which = which
        self._selinuxfs = selinuxfs
        self.bins = dict((t, which(t)) for t in self.TOOLS)
        self.calls = []

    def run(self, tool, args, data=None):
        argv = [self.bins[tool]] + list(args)
        self.calls.append(' '.join([tool] + list(args)))
        rc, out, err = self._run(argv, data=data)
        return rc, out or '', err or ''

    def mode(self):
        """'enforcing', 'permissive', 'disabled' (kernel off, userspace installed) or 'absent'."""
        if self.bins['getenforce']:
            rc, out, err = self.run('getenforce', [])
            value = out.strip().lower()
            enabled = value in ('enforcing', 'permissive')
            if rc != 0 and not value:
                enabled = False
        elif self.bins['selinuxenabled']:
            rc, out, err = self.run('selinuxenabled', [])
            enabled = rc == 0
            value = 'enforcing' if enabled and self._enforce_file() else 'permissive'
        else:
            enabled = os.path.exists(os.path.join(self._selinuxfs, 'enforce'))
            value = 'enforcing' if enabled and self._enforce_file() else 'permissive'
        if enabled:
            missing = [t for t in ('semanage', 'restorecon', 'matchpathcon') if not self.bins[t]]
            if missing:
                raise SELinuxError('SELinux is %s on this host but %s cannot be found. %s'
                                   % (value, ', '.join(missing), PACKAGE_HINT))
            return value
        if not self.bins['semanage']:
            return 'absent'
        return 'disabled'

    def _enforce_file(self):
        try:
            with open(os.path.join(self._selinuxfs, 'enforce')) as f:
                return f.read().strip() == '1'
        except (IOError, OSError):
            return False

    def fcontext_local(self):
        rc, out, err = self.run('semanage', ['fcontext', '-l', '-C'])
        if rc != 0:
            raise SELinuxError('Cannot read the local file-context rules (semanage fcontext -l -C, '
                               'rc=%s): %s' % (rc, (err or out).strip()), store_error=True)
        return parse_fcontext_list(out)

    def booleans(self):
        rc, out, err = self.run('semanage', ['boolean', '-l'])
        if rc != 0:
            raise SELinuxError('Cannot read the SELinux booleans (semanage boolean -l, rc=%s): %s'
                               % (rc, (err or out).strip()))
        return parse_semanage_booleans(out)

    def matchpathcon(self, paths):
        if not self.bins['matchpathcon']:
            return {}
        rc, out, err = self.run('matchpathcon', list(paths))
        return parse_matchpathcon(out)

    def semanage_import(self, lines):
        """Apply semanage command lines in one transaction; returns (rc, out, err)."""
        return self.run('semanage', ['import'], data=''.join(line + '\n' for line in lines))

    def restorecon(self, path, dry_run):
        args = ['-R', '-v'] + (['-n'] if dry_run else []) + [path]
        rc, out, err = self.run('restorecon', args)
        return rc, parse_restorecon(out + '\n' + err), out, err


# ---------------------------------------------------------------- planning

def _q(value):
    return "'%s'" % value


def plan_rules(path, state, setype, equivalent_to, local, policy_type_for):
    """Work out the semanage lines that bring the local rules for path to the wanted state.

    local: parse_fcontext_list() of `semanage fcontext -l -C`. policy_type_for: callable
    returning (type of path, type of a file below it) as the store answers now (matchpathcon).
    Returns dict(lines, before, after, rule, source).
    """
    variants = regex_variants(path)
    ours = [r for r in local['rules'] if r['regex'] in variants and r['ftype'] == 'all files']
    equivs = [(p, t) for (p, t) in local['equivalences'] if p == path]
    before = ['fcontext %s all files -> %s' % (r['regex'], r['setype']) for r in ours]
    before += ['fcontext equivalence %s = %s' % e for e in equivs]
    lines = []
    after = []
    rule = None
    source = None

    if state == 'absent':
        for r in ours:
            lines.append('fcontext -d -f a %s' % _q(r['regex']))
        for p, t in equivs:
            lines.append('fcontext -d -e %s %s' % (t, p))
        return dict(lines=lines, before=before, after=after, rule=None, source=None)

    if equivalent_to:
        for r in ours:
            lines.append('fcontext -d -f a %s' % _q(r['regex']))
        keep = (path, equivalent_to) in equivs
        for p, t in equivs:
            if t != equivalent_to:
                lines.append('fcontext -d -e %s %s' % (t, p))
        if not keep:
            lines.append('fcontext -a -e %s %s' % (equivalent_to, path))
        after.append('fcontext equivalence %s = %s' % (path, equivalent_to))
        rule = {'path': path, 'equivalent_to': equivalent_to}
        return dict(lines=lines, before=before, after=after, rule=rule, source='local')

    # A type rule. An equivalence for the same path would shadow it: remove it.
    for p, t in equivs:
        lines.append('fcontext -d -e %s %s' % (t, p))
    matching = [r for r in ours if r['setype'] == setype]
    if matching:
        keep = matching[0]
        for r in ours:
            if r is not keep:
                lines.append('fcontext -d -f a %s' % _q(r['regex']))
        regex = keep['regex']
        source = 'local'
    elif ours:
        keep = ([r for r in ours if r['regex'] == variants[0]] or ours)[0]
        for r in ours:
            if r is not keep:
                lines.append('fcontext -d -f a %s' % _q(r['regex']))
        regex = keep['regex']
        lines.append('fcontext -m -f a -t %s %s' % (setype, _q(regex)))
        source = 'local'
    else:
        regex = variants[0]
        dir_type, child_type = (None, None) if equivs else policy_type_for()
        if dir_type == setype and child_type == setype:
            source = 'policy'  # the distribution's policy already labels it (e.g. /var/lib/libvirt/images)
        else:
            lines.append('fcontext -a -f a -t %s %s' % (setype, _q(regex)))
            source = 'local'
    if source == 'local':
        after.append('fcontext %s all files -> %s' % (regex, setype))
    rule = {'regex': regex, 'setype': setype}
    return dict(lines=lines, before=before, after=after, rule=rule, source=source)


def plan_booleans(wanted, current, enabled):
    """semanage lines and before/after values for the wanted booleans ({name: bool}).

    current: parse_semanage_booleans(). Unknown names raise SELinuxError (before any change).
    A boolean needs a change when its stored (persistent) value differs, or, with SELinux
    enabled, its running value does.
    """
    unknown = sorted(n for n in wanted if n not in current)
    if unknown:
        hints = []
        for n in unknown:
            close = difflib.get_close_matches(n, list(current), n=3)
            if close:
                hints.append('%s (did you mean %s?)' % (n, ', '.join(close)))
            else:
                hints.append(n)
        raise SELinuxError('Unknown SELinux boolean(s): %s. `semanage boolean -l` lists the '
                           'booleans of the loaded policy.' % '; '.join(hints))
    lines = []
    values = {}
    for name in sorted(wanted):
        want = bool(wanted[name])
        cur = current[name]
        stored = cur['default']
        running = cur['state']
        differs = stored != want or (enabled and running != want)
        values[name] = {'before': stored, 'after': want}
        if enabled:
            values[name]['running_before'] = running
        if differs:
            lines.append('boolean -m --%s %s' % ('on' if want else 'off', name))
    return lines, values


# ---------------------------------------------------------------- the whole run

def _diff_text(directory, rules, booleans):
    out = ['directory: %s' % directory]
    out += rules or ['fcontext: (no local rule)']
    for name in sorted(booleans):
        out.append('boolean %s: %s' % (name, 'on' if booleans[name] else 'off'))
    return '\n'.join(out) + '\n'


class VirtDirManager(ManagerBase):
    """Bring one image directory's SELinux labelling to the wanted state.

    params: path, state, setype, equivalent_to, relabel, booleans ({name: bool}),
    auto_booleans, required. directory: object with .exists (bool), .describe(planned=False)
    -> str (planned=True: what check mode would make of it) and .ensure() -> bool (changed;
    honours check mode itself), or None to leave the directory alone.
    """

    def __init__(self, cli, params, check_mode, diff_mode=True, directory=None, mount_lookup=None,
                 security_models=None):
        super(VirtDirManager, self).__init__(check_mode=check_mode, diff_mode=diff_mode)
        self.cli = cli
        self.security_models = security_models
        self.p = params
        self.directory = directory
        self.mount_lookup = mount_lookup or _mountinfo.mount_for_path
        self.notes = []

    def run(self):
        """The module result; its warnings (also kept in self.warnings) under 'warnings'."""
        result = self._converge()
        if self.warnings:
            result['warnings'] = list(self.warnings)
        if not self.diff_mode:
            result.pop('diff', None)
        return result

    def _converge(self):
        p = self.p
        path = p['path']
        # No 'state' key: Ansible adds the path's stat (state=directory, mode, owner...) itself.
        result = {'changed': False, 'path': path, 'rule': None,
                  'rule_source': None, 'matchpathcon': None, 'booleans': {},
                  'relabelled': [], 'relabelled_count': 0, 'relabel_skipped': None,
                  'network_fs': None, 'semanage_commands': []}
        mode, local = self._selinux_mode()
        result['selinux'] = mode
        result['libvirt_security_models'] = None
        if mode in ('disabled', 'absent') and self.security_models is not None:
            result['libvirt_security_models'] = self.security_models()
        if mode == 'absent':
            return self._without_selinux(result)
        if local is None:
            local = self.cli.fcontext_local()
        mount, kind = self._network_fs(result)
        rules, bool_values, lines = self._plan(mode, mount, kind, local, result)

        # Order: the store (rule, then booleans, one transaction), the directory, the relabel.
        # The store goes first because only semanage can tell a wrong type name: a typo then
        # changes nothing at all, not even the directory.
        done = []
        if lines and not self.check_mode:
            self._apply(lines, rules, done)
        if lines:
            done.append('policy store: %s' % '; '.join(lines))
        dir_before, dir_changed, dir_after = self._directory_step(done)
        # Relabel: after the rule and booleans are in place.
        relabelled, count, skipped = self._relabel(mode, kind, bool(rules['lines']), done)
        result['relabelled'] = relabelled[:RELABEL_LIST_CAP]
        result['relabelled_count'] = count
        result['relabel_skipped'] = skipped

        if self.cli.bins.get('matchpathcon'):
            answer = self.cli.matchpathcon([path])
            result['matchpathcon'] = answer.get(path)

        result['changed'] = bool(dir_changed or lines or count)
        result['diff'] = {
            'before_header': '%s (SELinux %s)' % (path, mode),
            'after_header': '%s (SELinux %s)' % (path, mode),
            'before': _diff_text(dir_before, rules['before'],
                                 dict((n, v['before']) for n, v in bool_values.items())),
            'after': _diff_text(dir_after, rules['after'],
                                dict((n, v['after']) for n, v in bool_values.items())),
        }
        result['notes'] = self.notes
        if mode == 'disabled' and lines:
            self.warnings.append(
                'SELinux is disabled on this host: the rule and booleans %s in the policy store '
                'and take effect when SELinux is enabled (enabling it relabels the whole file '
                'system at the next boot); nothing is relabelled now.'
                % ('would be recorded' if self.check_mode else 'are recorded'))
        return result

    def _selinux_mode(self):
        """(mode, local rules or None): a disabled host whose semanage cannot read a policy
        store counts as having no SELinux ('absent')."""
        mode = self.cli.mode()
        if mode != 'disabled':
            return mode, None
        try:
            return mode, self.cli.fcontext_local()
        except SELinuxError as exc:
            if not exc.details.get('store_error'):
                raise
            self.warnings.append('semanage is installed but cannot read a policy store, so '
                                 'this host counts as having no SELinux: %s' % exc.msg)
            return 'absent', None

    def _without_selinux(self, result):
        if self.p.get('required'):
            raise SELinuxError(
                'SELinux is not available on this host (no SELinux userspace or policy '
                'store), and required=true. %s Or set required=false where libvirt uses '
                'AppArmor or plain permissions instead.' % PACKAGE_HINT)
        self.notes.append('No SELinux here: nothing to label. libvirt confines guests with '
                          'the security driver it reports (AppArmor on Debian/Ubuntu, or '
                          'only DAC: the qemu user must be able to read the directory).')
        result['changed'] = self._ensure_directory([])
        result['notes'] = self.notes
        result['diff'] = {'before': '', 'after': ''}
        return result

    def _network_fs(self, result):
        """Where the path lives: NFS/CIFS need a boolean, and cannot carry labels."""
        mount, dummy = self.mount_lookup(self.p['path'])
        kind = _mountinfo.network_fs_kind(mount['fstype']) if mount else None
        if mount is not None:
            result['network_fs'] = None if not kind else {
                'kind': kind, 'fstype': mount['fstype'], 'mount_point': mount['mount_point'],
                'source': mount['source']}
        return mount, kind

    def _wanted_booleans(self, mount, kind):
        """The booleans asked for, plus the one a network file system needs."""
        p = self.p
        wanted = dict(p.get('booleans') or {})
        if p['state'] != 'present' or not kind or not p.get('auto_booleans', True):
            return wanted
        boolean = _mountinfo.BOOLEAN_FOR_FS[kind]
        if boolean in wanted:
            if not wanted[boolean]:
                self.warnings.append(
                    '%s is on a %s mount (%s) but booleans sets %s to false: libvirt guests '
                    'will get "Permission denied" on its images while SELinux is enforcing.'
                    % (p['path'], mount['fstype'], mount['mount_point'], boolean))
        else:
            wanted[boolean] = True
            self.notes.append('%s is on a %s mount (%s from %s): turning on %s.'
                              % (p['path'], mount['fstype'], mount['mount_point'],
                                 mount['source'], boolean))
        return wanted

    def _plan(self, mode, mount, kind, local, result):
        """(rules plan, boolean values, semanage lines) for the store transaction."""
        p = self.p
        path = p['path']
        wanted = self._wanted_booleans(mount, kind)
        setype = p.get('setype') or 'virt_image_t'
        mpc_paths = [path, path + '/kvmops-probe.img']

        def policy_type_for():
            answers = self.cli.matchpathcon(mpc_paths)
            return (context_type(answers.get(mpc_paths[0])),
                    context_type(answers.get(mpc_paths[1])))

        rules = plan_rules(path, p['state'], setype, p.get('equivalent_to'), local,
                           policy_type_for)
        bool_lines, bool_values = ([], {})
        if wanted:
            enabled = mode in ('enforcing', 'permissive')
            bool_lines, bool_values = plan_booleans(wanted, self.cli.booleans(), enabled)
        lines = rules['lines'] + bool_lines
        result['rule'] = rules['rule']
        result['rule_source'] = rules['source']
        result['booleans'] = bool_values
        result['semanage_commands'] = lines
        if rules['source'] == 'policy':
            self.notes.append('The policy already labels %s as %s; no local rule needed.'
                              % (path, setype))
        return rules, bool_values, lines

    def _directory_step(self, done):
        """(description before, changed, description after) of the managed directory."""
        dir_before = self.directory.describe() if self.directory else 'unmanaged'
        dir_changed = self._ensure_directory(done)
        dir_after = self.directory.describe() if self.directory else 'unmanaged'
        if self.check_mode and dir_changed:
            dir_after = self.directory.describe(planned=True)
        return dir_before, dir_changed, dir_after

    def _ensure_directory(self, done):
        if self.directory is None:
            return False
        try:
            changed = self.directory.ensure()
        except (IOError, OSError) as exc:
            raise SELinuxError.failed_step(
                'directory', 'cannot create or set up %s: %s.' % (self.p['path'], exc), done)
        if changed:
            done.append('directory %s %s' % (self.p['path'],
                                             'checked (would change)' if self.check_mode
                                             else 'created/updated'))
        return changed

    def _apply(self, lines, rules, done):
        rc, out, err = self.cli.semanage_import(lines)
        if rc != 0 and 'already defined' in err and any(
                line.startswith('fcontext -a -f a -t ') for line in lines):
            # The distribution's policy has exactly this regex with another type: override it.
            lines[:] = [line.replace('fcontext -a -f a -t ', 'fcontext -m -f a -t ', 1)
                        for line in lines]
            rc, out, err = self.cli.semanage_import(lines)
        if rc != 0:
            raise SELinuxError.failed_step(
                'file-context rule and booleans',
                'semanage import (one transaction: %s) returned rc=%s: %s. semanage rolled the '
                'whole transaction back, so the policy store is unchanged. Check the type name '
                '(seinfo -t, or `semanage fcontext -l | grep _t`) and the boolean names.'
                % ('; '.join(lines), rc, (err or out).strip()), done)

    def _relabel(self, mode, kind, rule_changes, done):
        p = self.p
        path = p['path']
        if not p.get('relabel', True):
            return [], 0, 'relabel=false'
        if mode == 'disabled':
            return [], 0, 'SELinux is disabled: restorecon would do nothing'
        if not os.path.isdir(path):
            if self.check_mode and self.directory is not None and p['state'] == 'present':
                return [], 0, '%s does not exist yet (check mode)' % path
            return [], 0, '%s does not exist' % path
        if kind:
            return [], 0, ('%s is on %s: files there cannot carry SELinux labels; the boolean '
                           'lets guests use them' % (path, kind.upper()))
        if self.check_mode and rule_changes:
            self.notes.append('Check mode: the rule does not exist yet, so the files that '
                              'restorecon would relabel cannot be listed.')
            return [], None, None
        rc, paths, out, err = self.cli.restorecon(path, dry_run=self.check_mode)
        if rc != 0:
            raise SELinuxError.failed_step(
                'relabel', 'restorecon -R %s returned rc=%s: %s. Run `restorecon -R -v %s` to see '
                'which file it cannot relabel.' % (path, rc, (err or out).strip(), path), done)
        return paths, len(paths), None
