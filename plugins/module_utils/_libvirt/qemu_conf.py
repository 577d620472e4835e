# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A careful line editor for libvirt's qemu.conf. Private to the collection: no API promise.

libvirt has no command that validates qemu.conf, so this module carries a strict parser that
follows libvirt's own (src/util/virconf.c): ``name = value`` statements separated by line ends
or ``;``, ``#`` comments (whole lines, or after a value), values that are strings (``"..."``,
``'...'`` or ``\"\"\"...\"\"\"``, no escapes), integers (optional sign) or ``[...]`` lists. The
first statement of a name wins, as in ``virConfGetValue``.

Editing is a pure function of the text (:func:`edit`): every byte it does not own stays as it
was. A key is set by replacing the value of its active statement, else by inserting an
active line right after the commented example (``#key = ...``) that libvirt ships, else by
appending a line at the end. Comment text that merely mentions a key is never touched.

Every read-modify-write of the file runs under :func:`locked` (an exclusive ``flock`` on
qemu.conf itself, held from the read to the rename of the new file), so two runs that edit
different keys at the same time both keep their edit.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fcntl
import os
import re
import time

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import masking

STRING = 'string'
ULLONG = 'ullong'   # unsigned number (no sign, or '+')
LLONG = 'llong'     # number written with '-'
LIST = 'list'

_DIGITS = '0123456789'
_ALPHA = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
_NAME_CHARS = _ALPHA + _DIGITS + '_'
_BLANKS = ' \t'
_EOL = '\r\n'
_EOL_RE = re.compile('[\r\n]')
UINT_MAX = 4294967295


class ConfSyntaxError(KvmopsError):
    """The text is not something libvirt's parser accepts. Caught by qemu_identity, graphics,
    _vnc/manager and _vnc/config_file (each says to fix that line first)."""

    def __init__(self, line, message):
        super(ConfSyntaxError, self).__init__('line %d: %s' % (line, message))
        self.line = line
        self.message = message


class ConfEditError(KvmopsError):
    """An edit was asked for that cannot be written safely. Caught by _vnc/manager (nothing
    was written)."""


class Entry(object):
    """One active ``name = value`` statement and where it sits in the text."""

    __slots__ = ('key', 'value', 'vtype', 'start', 'end', 'vstart', 'vend', 'line')

    def __init__(self, key, value, vtype, start, end, vstart, vend, line):
        self.key = key
        self.value = value      # str, int, or list of (value) for lists
        self.vtype = vtype      # STRING, ULLONG, LLONG or LIST
        self.start = start      # offset of the name
        self.end = end          # offset after the value and any trailing comment
        self.vstart = vstart    # offset of the value
        self.vend = vend        # offset after the value
        self.line = line        # 1-based line of the name

    def __repr__(self):
        return 'Entry(%r=%r, line %d)' % (self.key, self.value, self.line)


def _line_of(text, pos):
    return text.count('\n', 0, pos) + 1


class _Parser(object):
    def __init__(self, text):
        self.text = text
        self.n = len(text)
        self.i = 0

    def error(self, message):
        raise ConfSyntaxError(_line_of(self.text, min(self.i, self.n)), message)

    def cur(self):
        return self.text[self.i] if self.i < self.n else ''

    def skip_blanks(self):
        while self.i < self.n and self.text[self.i] in _BLANKS:
            self.i += 1

    def skip_blanks_and_eol(self):
        while self.i < self.n and (self.text[self.i] in _BLANKS or self.text[self.i] in _EOL):
            self.i += 1

    def skip_to_eol(self):
        # one C-level search instead of a Python step per character (qemu.conf is mostly
        # comment lines: this loop was most of kvm_capability_facts' own parse time)
        m = _EOL_RE.search(self.text, self.i)
        self.i = m.start() if m else self.n

    def parse_string(self):
        t = self.text
        c = t[self.i]
        if c == "'":
            self.i += 1
            base = self.i
            while self.i < self.n and t[self.i] != "'" and t[self.i] not in _EOL:
                self.i += 1
            if self.cur() != "'":
                self.error('unterminated string')
            value = t[base:self.i]
            self.i += 1
            return value
        if self.i + 6 < self.n and t.startswith('"""', self.i):
            self.i += 3
            base = self.i
            while self.i + 2 < self.n and not t.startswith('"""', self.i):
                self.i += 1
            if not t.startswith('"""', self.i):
                self.error('unterminated string')
            value = t[base:self.i]
            self.i += 3
            return value
        self.i += 1
        base = self.i
        while self.i < self.n and t[self.i] != '"' and t[self.i] not in _EOL:
            self.i += 1
        if self.cur() != '"':
            self.error('unterminated string')
        value = t[base:self.i]
        self.i += 1
        return value

    def parse_value(self):
        """Return (value, vtype)."""
        self.skip_blanks()
        if self.i >= self.n:
            self.error('expecting a value')
        c = self.text[self.i]
        if c in '"\'':
            return self.parse_string(), STRING
        if c == '[':
            self.i += 1
            self.skip_blanks_and_eol()
            items = []
            if self.i < self.n and self.cur() != ']':
                items.append(self.parse_value()[0])
                self.skip_blanks_and_eol()
            while self.i < self.n and self.cur() != ']':
                if self.cur() != ',':
                    self.error('expecting a separator in list')
                self.i += 1
                self.skip_blanks_and_eol()
                if self.cur() == ']':
                    break
                items.append(self.parse_value()[0])
                self.skip_blanks_and_eol()
            if self.cur() != ']':
                self.error('list is not closed with ]')
            self.i += 1
            return items, LIST
        if c in _DIGITS or c in '-+':
            vtype = LLONG if c == '-' else ULLONG
            neg = c == '-'
            if c in '-+':
                self.i += 1
            if self.i >= self.n or self.text[self.i] not in _DIGITS:
                self.error('unterminated number')
            base = self.i
            while self.i < self.n and self.text[self.i] in _DIGITS:
                self.i += 1
            number = int(self.text[base:self.i])
            return (-number if neg else number), vtype
        self.error('expecting a value')

    def parse(self):
        entries = []
        while self.i < self.n:
            # statement
            self.skip_blanks_and_eol()
            if self.cur() == '#':
                self.skip_to_eol()
            else:
                self.skip_blanks()
                start = self.i
                if self.cur() == '' or self.cur() not in _ALPHA:
                    self.error('expecting a name')
                while self.i < self.n and self.text[self.i] in _NAME_CHARS:
                    self.i += 1
                name = self.text[start:self.i]
                self.skip_blanks()
                if self.cur() != '=':
                    self.error('expecting an assignment')
                self.i += 1
                self.skip_blanks()
                vstart = self.i
                value, vtype = self.parse_value()
                vend = self.i
                self.skip_blanks()
                if self.cur() == '#':
                    self.skip_to_eol()
                entries.append(Entry(name, value, vtype, start, self.i, vstart, vend,
                                     _line_of(self.text, start)))
            # separator
            self.skip_blanks()
            if self.i >= self.n:
                break
            if self.cur() in _EOL:
                self.skip_blanks_and_eol()
            elif self.cur() == ';':
                self.i += 1
                self.skip_blanks_and_eol()
            else:
                self.error('expecting a separator')
        return entries


def parse(text):
    """Parse qemu.conf text strictly, as libvirt does; return the active entries in order.

    Raises ConfSyntaxError (with the line number) for text libvirt would refuse.
    """
    return _Parser(text).parse()


def values(text):
    """Dict of key -> value of the effective (first) statement of each key."""
    result = {}
    for entry in parse(text):
        result.setdefault(entry.key, entry.value)
    return result


def effective(entries, key):
    """The first entry of key (the one libvirt uses), or None."""
    for entry in entries:
        if entry.key == key:
            return entry
    return None


def format_value(value):
    """Render a Python value in qemu.conf syntax (bool -> 1/0, int, str, list)."""
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return '[ ' + ', '.join(format_value(v) for v in value) + ' ]'
    if isinstance(value, str):
        if '\n' in value or '\r' in value:
            raise ConfEditError('a qemu.conf string value cannot contain a line break')
        if '"' not in value:
            return '"%s"' % value
        if "'" not in value:
            return "'%s'" % value
        raise ConfEditError('a qemu.conf string value cannot contain both \' and " quotes')
    raise ConfEditError('cannot write a value of type %s to qemu.conf' % type(value).__name__)


def _normal(value):
    """Compare values the way libvirt reads them (a bool is the number 0 or 1)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, tuple):
        return [_normal(v) for v in value]
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _expected_vtype(value):
    if isinstance(value, (bool, int)):
        return LLONG if value < 0 else ULLONG
    if isinstance(value, (list, tuple)):
        return LIST
    return STRING


def same_value(entry, value):
    """True when entry already holds value with the type libvirt would read."""
    return entry.vtype == _expected_vtype(value) and entry.value == _normal(value)


def _newline_of(text):
    return '\r\n' if '\r\n' in text else '\n'


def _line_bounds(text, start, end):
    """Offsets of the whole lines holding text[start:end] (the end includes its line end)."""
    line_start = text.rfind('\n', 0, start) + 1
    nl = text.find('\n', end)
    line_end = len(text) if nl < 0 else nl + 1
    return line_start, line_end


def _line_text(text, pos):
    start, end = _line_bounds(text, pos, pos)
    return text[start:end].rstrip('\r\n')


def _example_line_end(text, key):
    """Offset just after the commented example of key (``#key = ...``), or None.

    A commented list spanning several lines (``#key = [`` ... ``#]``) is skipped whole.
    """
    match = re.search(r'^#%s[ \t]*=([^\n]*)$' % re.escape(key), text, re.M)
    if not match:
        return None
    pos = _line_bounds(text, match.end(), match.end())[1]
    if '[' in match.group(1) and ']' not in match.group(1):
        scan = pos
        while scan < len(text) and text.startswith('#', scan):
            line_end = _line_bounds(text, scan, scan)[1]
            if ']' in text[scan:line_end]:
                pos = line_end
                break
            scan = line_end
    return pos


def _set_one(text, key, value):
    """Apply one setting; return (new_text, change or None)."""
    entries = parse(text)
    entry = effective(entries, key)
    rendered = format_value(value)
    if entry is not None:
        if same_value(entry, value):
            return text, None
        before = _line_text(text, entry.start)
        new_text = text[:entry.vstart] + rendered + text[entry.vend:]
        after = _line_text(new_text, entry.start)
        return new_text, {'key': key, 'action': 'replace', 'line': entry.line,
                          'before': before, 'after': after}
    newline = _newline_of(text)
    line = '%s = %s' % (key, rendered)
    pos = _example_line_end(text, key)
    if pos is not None:
        if pos == len(text) and text and not text.endswith('\n'):
            prefix = newline
        else:
            prefix = ''
        new_text = text[:pos] + prefix + line + newline + text[pos:]
        return new_text, {'key': key, 'action': 'insert', 'before': None, 'after': line,
                          'line': _line_of(new_text, pos + len(prefix))}
    prefix = newline if text and not text.endswith('\n') else ''
    new_text = text + prefix + line + newline
    return new_text, {'key': key, 'action': 'append', 'before': None, 'after': line,
                      'line': _line_of(new_text, len(text) + len(prefix))}


def _unset_one(text, key):
    """Remove every active statement of key; return (new_text, changes)."""
    changes = []
    while True:
        entries = parse(text)
        entry = effective(entries, key)
        if entry is None:
            return text, changes
        line_start, line_end = _line_bounds(text, entry.start, entry.vend)
        head = text[line_start:entry.start]
        tail = text[entry.end:line_end]
        if head.strip(' \t') or tail.strip(' \t\r\n;'):
            raise ConfEditError(
                'cannot remove %s at line %d: it shares its line with another statement; '
                'edit that line by hand' % (key, entry.line))
        changes.append({'key': key, 'action': 'remove', 'line': entry.line,
                        'before': text[line_start:line_end].rstrip('\r\n'), 'after': None})
        text = text[:line_start] + text[line_end:]
        if not text.strip(' \t\r\n'):
            # libvirt refuses a file of blank lines ("expecting a name"), not an empty one.
            text = ''


def edit(text, settings=None, unset=None):
    """Set and unset keys in qemu.conf text.

    settings: list of (key, value) pairs (or a dict), applied in order; value is a str, int,
    bool or list. unset: keys whose active statements are removed.
    Returns (new_text, changes): changes is a list of dicts {key, action (replace, insert,
    append, remove), line, before, after} in the order they were made.
    Raises ConfSyntaxError when the input (or, defensively, the output) does not parse, and
    ConfEditError when a value cannot be written or the result would differ in a key it does
    not own.
    """
    if isinstance(settings, dict):
        settings = list(settings.items())
    settings = list(settings or [])
    unset = list(unset or [])
    owned = set(k for k, dummy in settings) | set(unset)
    for key in owned:
        if not key or key[0] not in _ALPHA or any(c not in _NAME_CHARS for c in key):
            raise ConfEditError('%r is not a valid qemu.conf key' % (key,))
    old_entries = parse(text)
    new_text = text
    changes = []
    for key, value in settings:
        new_text, change = _set_one(new_text, key, value)
        if change:
            changes.append(change)
    for key in unset:
        new_text, removed = _unset_one(new_text, key)
        changes.extend(removed)
    validate_edit(old_entries, new_text, settings, unset)
    # Report the lines of the final text (later inserts shift earlier ones).
    new_entries = parse(new_text)
    for change in changes:
        if change['action'] != 'remove':
            change['line'] = effective(new_entries, change['key']).line
    return new_text, changes


def validate_edit(old_entries, new_text, settings, unset):
    """Check the edited text parses and differs only in the keys we own, as we asked."""
    try:
        new_entries = parse(new_text)
    except ConfSyntaxError as exc:  # pragma: no cover - would be a bug in this module
        raise ConfEditError.rewrap(exc, 'the edited qemu.conf would not parse (%s); nothing '
                                   'was written' % exc)
    owned = set(k for k, dummy in settings) | set(unset)
    kept_old = [(e.key, e.vtype, e.value) for e in old_entries if e.key not in owned]
    kept_new = [(e.key, e.vtype, e.value) for e in new_entries if e.key not in owned]
    if kept_old != kept_new:  # pragma: no cover - would be a bug in this module
        raise ConfEditError('editing qemu.conf would change settings it does not own; '
                            'nothing was written')
    for key, value in settings:
        entry = effective(new_entries, key)
        if entry is None or not same_value(entry, value):  # pragma: no cover
            raise ConfEditError('qemu.conf would not hold %s as asked; nothing was written'
                                % key)
    for key in unset:
        if effective(new_entries, key) is not None:  # pragma: no cover
            raise ConfEditError('qemu.conf would still set %s; nothing was written' % key)


def check_types(entries, types, filename='qemu.conf'):
    """Errors libvirt would report when reading these keys with these types.

    types maps key -> 'string', 'bool' or 'uint' (virConfGetValueString/Bool/UInt).
    Returns a list of messages (empty when libvirt would accept the values).
    """
    errors = []
    for key, kind in types.items():
        entry = effective(entries, key)
        if entry is None:
            continue
        where = '%s line %d' % (filename, entry.line)
        if kind == 'string' and entry.vtype != STRING:
            errors.append('%s: expected a string for %s' % (where, key))
        elif kind == 'bool':
            if entry.vtype != ULLONG:
                errors.append('%s: expected a bool (0 or 1) for %s' % (where, key))
            elif entry.value > 1:
                errors.append('%s: value for %s must be 0 or 1' % (where, key))
        elif kind == 'uint':
            if entry.vtype != ULLONG:
                errors.append('%s: expected an unsigned integer for %s' % (where, key))
            elif entry.value > UINT_MAX:
                errors.append('%s: value for %s must be in range 0:%d' % (where, key, UINT_MAX))
    return errors


def mask_secrets(text, keys, changed_from=None):
    """Replace the values of the given keys by "********" (for diffs): their active
    statements, and every commented-out ``key = value`` (an old password kept in a comment).

    With changed_from (the text before an edit), a value that differs from the one there is
    shown as "********" followed by a "# changed" comment, so a diff still shows the change.
    Text that does not parse still gets its ``key = value`` lines masked, active or not.
    """
    try:
        entries = parse(text)
        old = values(changed_from) if changed_from is not None else None
    except ConfSyntaxError:
        return _mask_unparsed(text, keys)
    masked_value = '"%s"' % masking.MASK
    for entry in sorted((e for e in entries if e.key in keys), key=lambda e: -e.vstart):
        mask = masked_value
        if old is not None and old.get(entry.key) != entry.value:
            mask += '  # changed (value hidden)'
        text = text[:entry.vstart] + mask + text[entry.vend:]
    return masking.mask_commented_settings(text, keys, masked_value)


def _mask_unparsed(text, keys):
    """Every ``key = ...`` line of these keys masked, for text libvirt would not parse."""
    text = masking.mask_commented_settings(text, keys)
    if not keys:
        return text
    pattern = re.compile(r'^([ \t]*(?:%s)[ \t]*=[ \t]*)([^\r\n#]*)' % '|'.join(re.escape(k) for k in keys),
                         re.M)
    return pattern.sub(lambda m: m.group(1) + '"%s"' % masking.MASK, text)


# ---------------------------------------------------------------------------------------------
# One editor at a time: an exclusive flock on qemu.conf itself, from the read to the rename.
# ---------------------------------------------------------------------------------------------

LOCK_TIMEOUT = 300
LOCK_POLL = 0.05


def _open_locked(path, timeout, poll):
    """An fd of path holding an exclusive flock, taken on the file that is at path now.

    The lock is on the file itself (no lock file beside it: the directory gets no new entry).
    A writer replaces the file by renaming a new one over it; a waiter that got the lock on
    the replaced file sees that its inode is no longer the one at path and takes the lock on
    the new file instead. Returns None when path does not exist (nothing to lock: the caller
    reports that)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except (IOError, OSError) as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                    if time.monotonic() >= deadline:
                        raise KvmopsError(
                            'another process has been editing %s for %d s (it holds its edit '
                            'lock; another vnc_listen run, or one that hangs?). Nothing was '
                            'changed; run again when it has finished, or stop it.'
                            % (path, timeout))
                    time.sleep(poll)
            try:
                current = os.stat(path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                current = None
            held = os.fstat(fd)
            if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)    # replaced (or removed) while we waited: lock the file at path now
        if current is None:
            return None


def locked(path, func, enabled=True, timeout=LOCK_TIMEOUT, poll=LOCK_POLL):
    """Run func() while holding qemu.conf's edit lock; return what func returns.

    func reads the file, edits the text and writes it back by renaming a new file over it
    (as vnc_listen does); the lock is held until func returns, so a second editor reads only
    after the first one's rename and edits the new text. enabled=False (check mode: nothing
    is written) runs func without the lock. The real path is locked (a symlinked qemu.conf
    is replaced at its target). A missing file is not locked (func reports it)."""
    if not enabled:
        return func()
    try:
        fd = _open_locked(os.path.realpath(path), timeout, poll)
    except (IOError, OSError):
        fd = None       # unreadable: func's own read says why, with the fix
    try:
        return func()
    finally:
        if fd is not None:
            os.close(fd)    # closing releases the flock
