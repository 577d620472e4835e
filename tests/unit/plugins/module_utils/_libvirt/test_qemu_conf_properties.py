"""Property-based tests (hypothesis) of the qemu.conf line editor on generated files.

Files are generated from what libvirt's parser accepts (virconf.c): comments, blank lines,
statements of known and unknown keys with every value type and quoting (', ", triple
quotes, signed numbers, lists over several lines), trailing comments, ';' separators,
commented examples of the edited key, LF or CRLF line ends, with or without a final newline.
Properties: the result parses; only the edited setting changed (every other byte kept, found
by stripping the common prefix and suffix); the value reads back as asked; the same edit
again changes nothing. Arbitrary text never raises anything but ConfSyntaxError.

The oracle is libvirt's own parser (tests/support/libvirt_conf_oracle.py: virsh reading a
generated libvirt.conf as an unprivileged user, test:///default, no daemon): our parser must
accept exactly what libvirt accepts, and every edited file must pass libvirt's parser.
"""
import pytest

from hypothesis import assume, given, strategies as st

from support.libvirt_conf_oracle import available as oracle_available, libvirt_verdict

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as qc

KEYS = ['vnc_listen', 'vnc_tls', 'vnc_password', 'remote_display_port_min', 'user',
        'security_driver', 'cgroup_device_acl', 'x_unknown_key', 'nvram', 'spice_listen']
EDIT_KEYS = ['vnc_listen', 'vnc_tls', 'vnc_password', 'remote_display_port_max', 'nvram']

safe_chars = st.characters(blacklist_characters='\r\n\'"', blacklist_categories=('Cs',))
words = st.text(alphabet=safe_chars, max_size=12)
blank = st.text(alphabet=' \t', max_size=3)


@st.composite
def scalar(draw):
    kind = draw(st.sampled_from(['dq', 'sq', 'tq', 'int', 'neg', 'plus']))
    w = draw(words)
    if kind == 'dq':
        return '"%s"' % w.replace('"', '')
    if kind == 'sq':
        return "'%s'" % w
    if kind == 'tq':
        inner = draw(st.text(alphabet=safe_chars, min_size=1, max_size=12))
        return '"""%s"""' % inner
    n = draw(st.integers(0, 2 ** 40))
    return {'int': '%d', 'neg': '-%d', 'plus': '+%d'}[kind] % n


@st.composite
def value(draw, nl):
    if draw(st.integers(0, 4)) == 0:
        items = draw(st.lists(scalar(), max_size=4))
        sep = draw(st.sampled_from([', ', ',', ',' + nl + '    ']))
        trailing = ',' if items and draw(st.booleans()) else ''
        return '[' + draw(blank) + sep.join(items) + trailing + draw(blank) + ']'
    return draw(scalar())


@st.composite
def line(draw, nl):
    kind = draw(st.sampled_from(['comment', 'blank', 'stmt', 'stmt', 'example', 'list_example',
                                 'two']))
    if kind == 'comment':
        return '#' + draw(words)
    if kind == 'blank':
        return draw(blank)
    if kind == 'example':
        return '#%s = %s' % (draw(st.sampled_from(EDIT_KEYS)), draw(scalar()))
    if kind == 'list_example':
        return '#%s = [%s#  "a",%s#]' % (draw(st.sampled_from(EDIT_KEYS)), nl, nl)
    stmt = '%s%s%s=%s%s' % (draw(blank), draw(st.sampled_from(KEYS)), draw(blank), draw(blank),
                            draw(value(nl)))
    if kind == 'two':
        stmt += '; %s = %s' % (draw(st.sampled_from(KEYS)), draw(scalar()))
    if draw(st.booleans()):
        stmt += draw(blank) + '# ' + draw(words)
    return stmt


@st.composite
def conf_file(draw):
    nl = draw(st.sampled_from(['\n', '\r\n']))
    lines = draw(st.lists(line(nl), max_size=14))
    text = nl.join(lines)
    if lines and draw(st.booleans()):
        text += nl
    return text


edit_values = st.one_of(
    st.sampled_from(['127.0.0.1', '0.0.0.0', '::1', "it's", 'say "hi"']),
    st.booleans(), st.integers(0, 65535), st.text(alphabet=safe_chars, max_size=10),
    st.lists(st.sampled_from(['/dev/null', '/dev/kvm']), max_size=3),
)


needs_oracle = pytest.mark.skipif(not oracle_available(), reason='needs root, virsh, setpriv')


def _ours(text):
    try:
        qc.parse(text)
        return True, None
    except qc.ConfSyntaxError as exc:
        return False, exc.line


@needs_oracle
@given(st.one_of(conf_file(), conf_file().map(lambda t: t[:len(t) * 2 // 3]),
                 st.text(alphabet='ab_= \t\r\n#"\'[],;-+0123456789', max_size=40)))
def test_parser_agrees_with_libvirt(text):
    assume('\x00' not in text)  # libvirt reads a C string: a NUL ends the file early
    ok, line = _ours(text)
    lv_ok, lv_line, lv_msg = libvirt_verdict(text)
    assert ok == lv_ok, (text, line, lv_line, lv_msg)
    if not ok:
        assert line == lv_line, (text, line, lv_line, lv_msg)


@given(conf_file(), st.sampled_from(EDIT_KEYS), edit_values)
def test_edit_keeps_every_other_byte_and_is_idempotent(text, key, val):
    assume(_ours(text)[0])  # a file of blank lines only is refused by libvirt, and by us
    old_entries = qc.parse(text)
    try:
        new, changes = qc.edit(text, [(key, val)])
    except qc.ConfEditError as exc:
        assert str(exc)
        # only values that qemu.conf cannot hold are refused
        assert isinstance(val, str) and ('"' in val and "'" in val), exc
        return
    new_entries = qc.parse(new)
    assert qc.same_value(qc.effective(new_entries, key), val)
    others = [(e.key, e.vtype, e.value) for e in old_entries if e.key != key]
    assert [(e.key, e.vtype, e.value) for e in new_entries if e.key != key] == others
    old_entry = qc.effective(old_entries, key)
    if new == text:
        assert not changes and qc.same_value(old_entry, val)
    elif old_entry is not None:
        # replaced in place: exactly the old value's bytes were swapped
        assert new == text[:old_entry.vstart] + qc.format_value(val) + text[old_entry.vend:]
    else:
        # inserted or appended one line: removing it gives back the old text byte for byte
        nl = '\r\n' if '\r\n' in text else '\n'
        added = '%s = %s' % (key, qc.format_value(val))
        candidates = [new[:i] + new[i + len(added) + len(nl):]
                      for i in range(len(new)) if new.startswith(added + nl, i)
                      and (i == 0 or new[i - 1] == '\n')]
        assert text in candidates or new == text + nl + added + nl, (text, new)
    again, changes2 = qc.edit(new, [(key, val)])
    assert again == new and changes2 == []
    if oracle_available():
        assert libvirt_verdict(new)[0], new


@given(conf_file(), st.sampled_from(EDIT_KEYS))
def test_unset_removes_only_whole_statement_lines(text, key):
    assume(_ours(text)[0])
    try:
        new, changes = qc.edit(text, unset=[key])
    except qc.ConfEditError as exc:
        assert 'shares its line' in str(exc)
        return
    assert qc.effective(qc.parse(new), key) is None
    assert qc.edit(new, unset=[key]) == (new, [])
    # every surviving byte keeps its order: new is old with some lines removed
    it = iter(text)
    assert all(ch in it for ch in new)


@given(conf_file(), st.sets(st.sampled_from(EDIT_KEYS)))
def test_masking_never_fails_and_hides_values(text, keys):
    assume(_ours(text)[0])
    masked = qc.values(qc.mask_secrets(text, keys))
    for key, val in qc.values(text).items():
        assert masked[key] == ('********' if key in keys else val)


@given(st.one_of(st.text(max_size=200), conf_file().map(lambda t: t[:len(t) // 2])))
def test_arbitrary_and_truncated_text_fails_only_with_a_syntax_error(text):
    try:
        qc.parse(text)
    except qc.ConfSyntaxError as exc:
        assert exc.line >= 1 and exc.message
    try:
        qc.edit(text, [('vnc_listen', '0.0.0.0')])
    except qc.ConfSyntaxError:
        pass
    except qc.ConfEditError as exc:  # pragma: no cover - would be a bug
        pytest.fail('edit refused parsable text: %s' % exc)
