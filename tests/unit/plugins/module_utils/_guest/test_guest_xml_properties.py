"""Property-based tests (hypothesis) of the domain XML builder with hostile input.

Every generated set of options either fails in spec.normalize / install.normalize_install with
a SpecError / DomainError (before anything is created), or builds a domain that libvirt's own
RelaxNG schema (/usr/share/libvirt/schemas/domain.rng) accepts and in which every value is
data: the name, paths, command line, keymap, password and install record come back out of
the parsed XML unchanged, and no element appears that the builder did not write.

Budget: the `ci` profile (tests/conftest.py, derandomised) in `make test`; `make fuzz` runs
the `fuzz` profile.
"""
import os

import pytest

from hypothesis import given, strategies as st

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as S
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import builder as X
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import device_defaults as DD
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import manager as M
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import install as IM
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import phase as P

etree = pytest.importorskip('lxml.etree')

SCHEMA = '/usr/share/libvirt/schemas/domain.rng'
QEMU = {'arch': 'x86_64', 'domain_type': 'qemu', 'machine': None}
KVM = {'arch': 'x86_64', 'domain_type': 'kvm', 'machine': None}

# Everything the builder (and the install phase) ever writes.
BUILDER_TAGS = {
    'domain', 'name', 'memory', 'currentMemory', 'vcpu', 'os', 'type', 'kernel', 'initrd',
    'cmdline', 'boot', 'features', 'acpi', 'apic', 'hyperv', 'relaxed', 'vapic', 'spinlocks',
    'cpu', 'model', 'clock', 'timer', 'on_poweroff', 'on_reboot', 'on_crash', 'devices',
    'disk', 'driver', 'source', 'target', 'readonly', 'controller', 'interface', 'mac',
    'serial', 'console', 'input', 'graphics', 'listen', 'video', 'uuid', 'metadata',
    '{%s}install' % P.RECORD_NS,
    # virt-install's device defaults (_guest/device_defaults.py)
    'pm', 'suspend-to-mem', 'suspend-to-disk', 'channel', 'rng', 'backend',
    '{%s}libosinfo' % DD.LIBOSINFO_NS, '{%s}os' % DD.LIBOSINFO_NS,
}

_SCHEMA = None


def schema():
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = etree.RelaxNG(etree.parse(SCHEMA))
    return _SCHEMA


# --- strategies: plausible values mixed with hostile ones ---------------------------------
HOSTILE = ['x</name><devices>', "a'/><evil/>", '&amp;', '&lt;x&gt;', ']]>', '<!--', '"',
           '\x00', '\x01', '\x1b[31m', '\x7f', '\ufffe', '\ud800', '\u202e', '\n', '\r\n',
           '\t', ' ', '$(reboot)', '`id`', ';rm -rf /', '%s%n', '{{ x }}', '../', '..',
           '/etc/shadow', '//x', 'ß', '名前', '\u0301']
hostile = st.sampled_from(HOSTILE)
any_text = st.text(min_size=0, max_size=40)
mixed = st.one_of(
    any_text,
    st.lists(st.one_of(hostile, st.text(alphabet='abcXYZ019._-+:/', max_size=8)),
             min_size=1, max_size=5).map(''.join),
)
names = st.one_of(st.from_regex(r'\A[A-Za-z0-9][A-Za-z0-9_.+:-]{0,30}\Z'), mixed)
paths = st.one_of(
    st.lists(st.one_of(st.from_regex(r'\A[a-z0-9_.-]{1,12}\Z'), hostile, st.just('..')),
             min_size=1, max_size=5).map(lambda parts: '/' + '/'.join(parts)),
    mixed,
)
cmdlines = st.one_of(st.just('console=ttyS0 quiet'), mixed)
keymaps = st.one_of(st.sampled_from(['en-us', 'de', 'fr-ch', 'pt-br', 'ja']), mixed)
passwords = st.one_of(st.text(min_size=1, max_size=8), mixed)
listens = st.one_of(st.sampled_from(['127.0.0.1', '::1', '0.0.0.0', '127.0.0.5']), mixed)
memory = st.one_of(st.integers(-5, 70000), st.sampled_from(['256MiB', '1GiB', '1.5G', '0', '-1M',
                                                            '3 TB', 'lots']), mixed)


@st.composite
def domain_params(draw):
    p = {'name': draw(names), 'os_variant': draw(st.sampled_from(['linux', 'windows',
                                                                  'generic', 'debian12']))}
    if draw(st.booleans()):
        p['memory'] = draw(memory)
    if draw(st.booleans()):
        p['kernel'] = draw(paths)
        if draw(st.booleans()):
            p['initrd'] = draw(paths)
        if draw(st.booleans()):
            p['cmdline'] = draw(cmdlines)
    if draw(st.booleans()):
        gtype = draw(st.sampled_from(['vnc', 'spice', 'none']))
        g = {'type': gtype}
        for key, strat in (('listen', listens), ('password', passwords), ('keymap', keymaps)):
            if draw(st.booleans()):
                g[key] = draw(strat)
        p['graphics'] = g
    if draw(st.booleans()):
        p['serial'] = draw(st.one_of(st.just('pty'), paths))
    disks = []
    for dummy in range(draw(st.integers(0, 3))):
        d = {'path': draw(paths), 'size': draw(st.sampled_from([1, 0.5, 10]))}
        if draw(st.booleans()):
            d['device'] = 'cdrom'
            del d['size']
        disks.append(d)
    p['disks'] = disks
    p['networks'] = draw(st.lists(st.fixed_dictionaries({'network': st.one_of(
        st.just('default'), names)}), max_size=2))
    return p


def _fails_cleanly(exc):
    msg = str(exc)
    assert msg and len(msg) < 2000, msg
    return msg


def build(params, host):
    spec = A.normalize(params)
    values = S.creation_values(spec)
    values['disks'] = [dict(d, format_resolved=d.get('format') or 'raw') for d in values['disks']]
    return spec, X.build_domain_xml(values, host)


def check_data_not_markup(spec, xml):
    tree = etree.fromstring(xml.encode('utf-8'))
    tags = set(el.tag for el in tree.iter() if isinstance(el.tag, str))
    assert tags <= BUILDER_TAGS, tags - BUILDER_TAGS
    assert len(tree.findall('name')) == 1
    assert tree.findtext('name') == spec['name']
    if spec['kernel']:
        assert tree.findtext('os/kernel') == spec['kernel']
    if spec['cmdline']:
        assert tree.findtext('os/cmdline') == spec['cmdline']
    g = spec['graphics']
    if g and g['type'] != 'none':
        el = tree.find('devices/graphics')
        assert el.get('passwd') == (g['password'] or None)
        assert el.get('keymap') == g['keymap']
    return tree


@pytest.mark.skipif(not os.path.exists(SCHEMA), reason='libvirt schemas not installed')
@given(domain_params(), st.sampled_from([QEMU, KVM]))
def test_domain_xml_is_valid_or_refused_before_anything(params, host):
    try:
        spec, xml = build(params, host)
    except S.SpecError as exc:
        _fails_cleanly(exc)
        return
    tree = check_data_not_markup(spec, xml)
    assert schema().validate(tree), (xml, schema().error_log)
    # The masked copy that results and diffs show never carries the password.
    g = spec['graphics']
    if g and g.get('password'):
        masked = etree.fromstring(M._mask(xml).encode()).find('devices/graphics')
        assert masked.get('passwd') == '********'


@given(names)
def test_a_name_is_data_never_markup(name):
    try:
        spec, xml = build({'name': name}, QEMU)
    except S.SpecError as exc:
        _fails_cleanly(exc)
        return
    assert etree.fromstring(xml.encode()).findtext('name') == name


@given(passwords)
def test_a_password_is_escaped_or_refused(password):
    try:
        spec, xml = build({'name': 'p', 'graphics': {'type': 'vnc', 'password': password}}, QEMU)
    except S.SpecError as exc:
        assert password not in _fails_cleanly(exc) or password in 'graphics.password'
        return
    assert etree.fromstring(xml.encode()).find('devices/graphics').get('passwd') == (password or None)


@st.composite
def install_params(draw):
    return {'location': draw(st.one_of(st.just('http://127.0.0.1:8/tree/'),
                                       st.just('https://127.0.0.1/a b/'),
                                       mixed.map(lambda s: 'http://127.0.0.1/' + s))),
            'extra_args': draw(st.one_of(st.none(), cmdlines))}


@pytest.mark.skipif(not os.path.exists(SCHEMA), reason='libvirt schemas not installed')
@given(install_params())
def test_install_configuration_is_valid_or_refused(install):
    spec = A.normalize({'name': 'inst', 'os_variant': 'linux', 'disks': [], 'networks': []})
    try:
        norm = IM.normalize_install(install, spec)
    except M.DomainError as exc:
        _fails_cleanly(exc)
        return
    final = X.build_domain_xml(S.creation_values(spec), QEMU)
    final = final.replace('<name>', '<uuid>8f1a3c2e-5b7d-4e0f-9a6b-1c2d3e4f5a6b</uuid><name>', 1)
    record = dict(P.new_record('location'), state='started', started=P.utc_now())
    plan = {'boot': 'kernel', 'kernel': '/var/lib/libvirt/boot/kvmops/k/kernel',
            'initrd': '/var/lib/libvirt/boot/kvmops/k/initrd',
            'cmdline': P.install_cmdline(norm['extra_args'], 'redhat', None)}
    xml = P.build_install_xml(final, plan, record)
    tree = etree.fromstring(xml.encode())
    tags = set(el.tag for el in tree.iter() if isinstance(el.tag, str))
    assert tags <= BUILDER_TAGS, tags - BUILDER_TAGS
    assert (tree.findtext('os/cmdline') or '') == plan['cmdline']
    assert P.read_record(xml)['phase'] == 'install'
    assert schema().validate(tree), (xml, schema().error_log)
