"""Unit tests of the qemu.conf line editor (pure text in, text out; no mocks).

Round trips run on real qemu.conf files of three libvirt versions (tests/fixtures/qemu_conf,
see its MANIFEST.md) and on this machine's /etc/libvirt/qemu.conf (read only, never written).
"""
import difflib
import os

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as qc

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'fixtures', 'qemu_conf')
FIXTURE_FILES = sorted(f for f in os.listdir(FIXTURES) if not f.endswith('.md'))
MACHINE_CONF = '/etc/libvirt/qemu.conf'

OWNED = [
    ('vnc_listen', '127.0.0.2'),
    ('vnc_tls', True),
    ('vnc_tls_x509_verify', True),
    ('vnc_tls_x509_cert_dir', '/etc/pki/kvmops-vnc'),
    ('vnc_password', 'XYZ9876'),
    ('vnc_auto_unix_socket', False),
    ('remote_display_port_min', 5900),
    ('remote_display_port_max', 5950),
]
OWNED_KEYS = set(k for k, dummy in OWNED)


def _read(path):
    with open(path, 'rb') as f:
        return f.read().decode('utf-8', 'surrogateescape')


def _sources():
    out = [pytest.param(os.path.join(FIXTURES, f), id=f) for f in FIXTURE_FILES]
    out.append(pytest.param(MACHINE_CONF, id='machine-etc-libvirt-qemu.conf'))
    return out


def _load(path):
    if path == MACHINE_CONF and not os.access(path, os.R_OK):
        pytest.skip('%s is not readable here' % path)
    return _read(path)


def _changed_lines(old, new):
    """Lines removed/added between old and new (difflib), without the +/- marker."""
    out = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm='', n=0):
        if line.startswith(('---', '+++', '@@')):
            continue
        out.append(line)
    return out


def _key_of(diff_line):
    return diff_line[1:].split('=')[0].strip()


def test_fixtures_are_there():
    assert len(FIXTURE_FILES) == 3


@pytest.mark.parametrize('path', _sources())
def test_real_files_parse(path):
    entries = qc.parse(_load(path))
    if path != MACHINE_CONF:
        # every shipped setting is commented out (see the fixtures' MANIFEST.md)
        assert entries == []


def _pristine(text):
    """The text without active lines for the keys we own (the machine's file may carry an
    edit, e.g. from a role run; the shipped fixtures have none)."""
    return qc.edit(text, unset=[k for k, dummy in OWNED])[0]


@pytest.mark.parametrize('path', _sources())
def test_round_trip_set_reset_change_remove(path):
    original = _pristine(_load(path))

    # set: one new active line per key, right after its commented example
    new, changes = qc.edit(original, OWNED)
    assert [c['key'] for c in changes] == [k for k, dummy in OWNED]
    diff = _changed_lines(original, new)
    assert all(line.startswith('+') for line in diff), diff
    assert sorted(_key_of(line) for line in diff) == sorted(OWNED_KEYS)
    new_lines = new.splitlines()
    for change in changes:
        assert change['action'] == 'insert'
        line_index = change['line'] - 1
        assert new_lines[line_index] == change['after']
        assert new_lines[line_index - 1].startswith('#%s ' % change['key']) or \
            new_lines[line_index - 1].startswith('#%s=' % change['key'])
    assert qc.values(new)['vnc_listen'] == '127.0.0.2'
    assert qc.values(new)['vnc_tls'] == 1

    # re-set: nothing changes, byte for byte
    again, changes = qc.edit(new, OWNED)
    assert again == new and changes == []

    # change: the active lines are replaced in place, nothing else moves
    changed_settings = [('vnc_listen', '127.0.0.3'), ('remote_display_port_max', 5999),
                        ('vnc_tls', False)]
    changed, changes = qc.edit(new, changed_settings)
    assert [c['action'] for c in changes] == ['replace'] * 3
    assert len(changed.splitlines()) == len(new.splitlines())
    diff = _changed_lines(new, changed)
    assert sorted(set(_key_of(line) for line in diff)) == sorted(k for k, d in changed_settings)
    assert 'vnc_listen = "127.0.0.3"' in changed.splitlines()

    # and relative to the original, the only differing lines are ours
    diff = _changed_lines(original, changed)
    assert all(line.startswith('+') and _key_of(line) in OWNED_KEYS for line in diff), diff

    # remove: back to the original bytes
    restored, changes = qc.edit(changed, unset=[k for k, dummy in OWNED])
    assert restored == original
    assert all(c['action'] == 'remove' for c in changes)


@pytest.mark.parametrize('path', _sources())
def test_comment_text_mentioning_keys_is_never_touched(path):
    original = _pristine(_load(path))
    new, dummy = qc.edit(original, [('vnc_listen', '0.0.0.0'), ('vnc_auto_unix_socket', True)])
    old_comments = [line for line in original.splitlines() if line.startswith('#')]
    new_comments = [line for line in new.splitlines() if line.startswith('#')]
    assert old_comments == new_comments
    assert any('preference over vnc_listen' in line for line in new_comments)


def test_insert_goes_right_after_the_commented_example():
    text = ('# VNC is configured to listen on 127.0.0.1 by default.\n'
            '# vnc_listen = "prose, not an example"\n'
            '#vnc_listen = "0.0.0.0"\n'
            '\n'
            '#vnc_tls = 1\n')
    new, changes = qc.edit(text, [('vnc_listen', '127.0.0.1')])
    assert new == ('# VNC is configured to listen on 127.0.0.1 by default.\n'
                   '# vnc_listen = "prose, not an example"\n'
                   '#vnc_listen = "0.0.0.0"\n'
                   'vnc_listen = "127.0.0.1"\n'
                   '\n'
                   '#vnc_tls = 1\n')
    assert changes == [{'key': 'vnc_listen', 'action': 'insert', 'line': 4, 'before': None,
                        'after': 'vnc_listen = "127.0.0.1"'}]


def test_prose_mentions_do_not_count_as_examples_so_the_key_is_appended():
    text = '# This setting takes preference over vnc_listen.\n# vnc_listen = "x" (prose)\n'
    new, changes = qc.edit(text, [('vnc_listen', '127.0.0.2')])
    assert new == text + 'vnc_listen = "127.0.0.2"\n'
    assert changes[0]['action'] == 'append' and changes[0]['line'] == 3


def test_example_of_a_longer_key_is_not_the_example_of_a_shorter_one():
    text = '#vnc_tls_x509_verify = 1\n#vnc_tls = 1\n'
    new, dummy = qc.edit(text, [('vnc_tls', True)])
    assert new == '#vnc_tls_x509_verify = 1\n#vnc_tls = 1\nvnc_tls = 1\n'


def test_multi_line_commented_list_example_is_skipped_whole():
    text = ('#cgroup_device_acl = [\n'
            '#    "/dev/null", "/dev/full",\n'
            '#    "/dev/urandom"\n'
            '#]\n'
            '\n')
    new, dummy = qc.edit(text, [('cgroup_device_acl', ['/dev/null', '/dev/kvm'])])
    assert new == text.replace('#]\n', '#]\ncgroup_device_acl = [ "/dev/null", "/dev/kvm" ]\n')
    assert qc.values(new)['cgroup_device_acl'] == ['/dev/null', '/dev/kvm']


def test_replace_keeps_indentation_and_inline_comment():
    text = 'user = "qemu"\n  vnc_listen   =  "0.0.0.0"   # public, ticket 42\ngroup = "kvm"\n'
    new, changes = qc.edit(text, [('vnc_listen', '127.0.0.1')])
    assert new == 'user = "qemu"\n  vnc_listen   =  "127.0.0.1"   # public, ticket 42\ngroup = "kvm"\n'
    assert changes[0]['before'] == '  vnc_listen   =  "0.0.0.0"   # public, ticket 42'
    assert changes[0]['line'] == 2


def test_admin_value_of_a_key_we_do_not_touch_is_kept():
    text = 'vnc_listen = "0.0.0.0"\nvnc_tls = 1\n'
    new, changes = qc.edit(text, [('vnc_tls', True)])
    assert new == text and changes == []


def test_first_statement_wins_and_set_replaces_it_unset_removes_all():
    text = 'vnc_listen = "10.0.0.1"\nx = 1\nvnc_listen = "10.0.0.2"\n'
    assert qc.values(text)['vnc_listen'] == '10.0.0.1'
    new, dummy = qc.edit(text, [('vnc_listen', '127.0.0.1')])
    assert new == 'vnc_listen = "127.0.0.1"\nx = 1\nvnc_listen = "10.0.0.2"\n'
    gone, changes = qc.edit(new, unset=['vnc_listen'])
    assert gone == 'x = 1\n'
    assert [c['line'] for c in changes] == [1, 2]


def test_unset_refuses_a_statement_sharing_its_line():
    with pytest.raises(qc.ConfEditError, match='shares its line'):
        qc.edit('a = 1; vnc_tls = 1\n', unset=['vnc_tls'])


def test_unset_of_an_absent_key_changes_nothing():
    assert qc.edit('#vnc_tls = 1\n', unset=['vnc_tls']) == ('#vnc_tls = 1\n', [])


def test_bool_compares_as_number_and_a_string_one_is_replaced():
    assert qc.edit('vnc_tls = 1\n', [('vnc_tls', True)])[1] == []
    new, changes = qc.edit('vnc_tls = "1"\n', [('vnc_tls', True)])
    assert new == 'vnc_tls = 1\n' and changes[0]['action'] == 'replace'


def test_crlf_files_keep_their_line_ends():
    text = '#vnc_listen = "0.0.0.0"\r\nuser = "qemu"\r\n'
    new, dummy = qc.edit(text, [('vnc_listen', '::1'), ('max_files', 1024)])
    assert new == '#vnc_listen = "0.0.0.0"\r\nvnc_listen = "::1"\r\nuser = "qemu"\r\nmax_files = 1024\r\n'


def test_file_without_final_newline_gets_one_before_appended_line():
    new, dummy = qc.edit('user = "qemu"', [('vnc_listen', '127.0.0.1')])
    assert new == 'user = "qemu"\nvnc_listen = "127.0.0.1"\n'
    new, dummy = qc.edit('#vnc_listen = "0.0.0.0"', [('vnc_listen', '127.0.0.1')])
    assert new == '#vnc_listen = "0.0.0.0"\nvnc_listen = "127.0.0.1"\n'


def test_empty_file():
    assert qc.parse('') == []
    assert qc.edit('', [('vnc_tls', False)])[0] == 'vnc_tls = 0\n'


def test_value_syntax_like_libvirt():
    text = ('a = "dq"\n'
            "b = 'sq \"inner\"'\n"
            'c = """tri\nple"""\n'
            'd = -5 # negative\n'
            'e = +7;f = 0\n'
            'g = [ "x",\n   "y", ]\n'
            'h = []\n'
            'i = [ [ "nested" ], 1 ]\n'
            '\t  j\t=\t"tabs"\n')
    entries = qc.parse(text)
    got = dict((e.key, (e.value, e.vtype)) for e in entries)
    assert got == {
        'a': ('dq', qc.STRING), 'b': ('sq "inner"', qc.STRING), 'c': ('tri\nple', qc.STRING),
        'd': (-5, qc.LLONG), 'e': (7, qc.ULLONG), 'f': (0, qc.ULLONG),
        'g': (['x', 'y'], qc.LIST), 'h': ([], qc.LIST), 'i': ([['nested'], 1], qc.LIST),
        'j': ('tabs', qc.STRING),
    }
    assert [e.line for e in entries] == [1, 2, 3, 5, 6, 6, 7, 9, 10, 11]


@pytest.mark.parametrize('text, line, message', [
    ('vnc_listen = "0.0.0.0\n', 1, 'unterminated string'),
    ("a = 'x\n", 1, 'unterminated string'),
    ('# ok\nvnc_listen "0.0.0.0"\n', 2, 'expecting an assignment'),
    ('vnc_listen = 0.0.0.0\n', 1, 'expecting a separator'),
    ('vnc_listen = yes\n', 1, 'expecting a value'),
    ('vnc_tls = 1 1\n', 1, 'expecting a separator'),
    ('a = [ "x"\n# a comment inside a list\n, "y" ]\n', 2, 'expecting a separator in list'),
    ('a = [ "x", "y"\n', 2, 'list is not closed with ]'),
    ('_a = 1\n', 1, 'expecting a name'),
    ('1a = 1\n', 1, 'expecting a name'),
    ('vnc-listen = "x"\n', 1, 'expecting an assignment'),
    ('a = -\n', 1, 'unterminated number'),
    ('a =\n', 1, 'expecting a value'),
    ('   \n', 2, 'expecting a name'),
])
def test_syntax_errors_like_libvirt(text, line, message):
    with pytest.raises(qc.ConfSyntaxError) as exc:
        qc.parse(text)
    assert exc.value.message == message
    assert exc.value.line == line


def test_edit_refuses_to_work_on_a_file_libvirt_cannot_parse():
    with pytest.raises(qc.ConfSyntaxError):
        qc.edit('vnc_listen = "0.0.0.0\n', [('vnc_listen', '127.0.0.1')])


@pytest.mark.parametrize('value, rendered', [
    ('plain', '"plain"'), ('has "dq"', "'has \"dq\"'"), (True, '1'), (False, '0'), (5950, '5950'),
    (-1, '-1'), (['a', 'b'], '[ "a", "b" ]'), ([], '[  ]'),
])
def test_format_value(value, rendered):
    assert qc.format_value(value) == rendered
    # what we write reads back as written
    assert qc.values('k = %s\n' % rendered)['k'] == (int(value) if isinstance(value, bool) else value)


@pytest.mark.parametrize('value', ['both \' and "', 'line\nbreak', 1.5, None])
def test_unwritable_values_are_refused(value):
    with pytest.raises(qc.ConfEditError):
        qc.edit('', [('k', value)])


def test_invalid_key_refused():
    with pytest.raises(qc.ConfEditError):
        qc.edit('', [('vnc listen', 'x')])


def test_check_types_mirrors_libvirt_getters():
    entries = qc.parse('vnc_listen = 1\nvnc_tls = 2\nvnc_auto_unix_socket = "1"\n'
                       'remote_display_port_min = -5900\nremote_display_port_max = 5950\n'
                       'vnc_tls_x509_verify = 0\n')
    errors = qc.check_types(entries, {'vnc_listen': 'string', 'vnc_tls': 'bool',
                                      'vnc_auto_unix_socket': 'bool',
                                      'remote_display_port_min': 'uint',
                                      'remote_display_port_max': 'uint',
                                      'vnc_tls_x509_verify': 'bool', 'absent': 'string'},
                            filename='q.conf')
    assert errors == [
        'q.conf line 1: expected a string for vnc_listen',
        'q.conf line 2: value for vnc_tls must be 0 or 1',
        'q.conf line 3: expected a bool (0 or 1) for vnc_auto_unix_socket',
        'q.conf line 4: expected an unsigned integer for remote_display_port_min',
    ]


def test_mask_secrets_hides_values_but_shows_a_change():
    old = '#vnc_password = "XYZ12345"\nvnc_password = "old"\nvnc_listen = "x"\n'
    new = qc.edit(old, [('vnc_password', 'new')])[0]
    # the commented example (or an old password kept in a comment) is masked too
    assert qc.mask_secrets(old, ['vnc_password']) == \
        '#vnc_password = "********"\nvnc_password = "********"\nvnc_listen = "x"\n'
    masked = qc.mask_secrets(new, ['vnc_password'], changed_from=old)
    assert 'new' not in masked and '# changed' in masked
    assert qc.mask_secrets(old, ['vnc_password'], changed_from=old) == \
        qc.mask_secrets(old, ['vnc_password'])


def test_mask_secrets_hides_old_passwords_in_comments():
    text = ('# an old one:\n#   vnc_password = "OldSecret1"\n##spice_password=\'Sp1ce\'\n'
            'vnc_listen = "x"  # vnc_password = "Trailing1"\n'
            '# vnc_password is documented here, without a value\n'
            '#vnc_passwords = "NotTheKey"\n')
    masked = qc.mask_secrets(text, ['vnc_password', 'spice_password'])
    for secret in ('OldSecret1', 'Sp1ce', 'Trailing1'):
        assert secret not in masked
    assert 'NotTheKey' in masked                  # another key that merely starts the same
    assert '# vnc_password is documented here, without a value\n' in masked
    assert masked.count('\n') == text.count('\n')
    assert qc.values(masked) == qc.values(text)   # comments stay comments
    # text libvirt would not parse: every key = value line is still masked
    broken = 'vnc_password = "Unparsed1"\n#vnc_password = "Old2"\nthis is not qemu.conf\n'
    masked = qc.mask_secrets(broken, ['vnc_password'])
    assert 'Unparsed1' not in masked and 'Old2' not in masked and 'this is not' in masked


def test_bytes_that_are_not_utf8_pass_through_untouched():
    raw = b'# caf\xe9 \xff\n#vnc_listen = "0.0.0.0"\nuser = "\xe9"\n'
    text = raw.decode('utf-8', 'surrogateescape')  # how the module reads the file
    new, dummy = qc.edit(text, [('vnc_listen', '127.0.0.1')])
    assert new.encode('utf-8', 'surrogateescape') == \
        b'# caf\xe9 \xff\n#vnc_listen = "0.0.0.0"\nvnc_listen = "127.0.0.1"\nuser = "\xe9"\n'
