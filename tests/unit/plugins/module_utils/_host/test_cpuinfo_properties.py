"""Property-based tests (hypothesis) of the cpuinfo parser on generated and truncated input.

Inputs: the real dumps in tests/fixtures/cpuinfo cut at any byte, with lines dropped,
duplicated or garbled, and arbitrary text. The parser never raises, every fact keeps its
type, and text that carries no known architecture's fields is reported as unrecognised
(arch None, no CPUs, no virtualization extension), never as a wrong architecture.
"""
import json
import os
import shutil
import tempfile

from hypothesis import given, strategies as st

from ansible_collections.kvmops.hypervisor.plugins.module_utils._host.cpuinfo import (
    infer_arch, parse_cpuinfo)
from ansible_collections.kvmops.hypervisor.plugins.module_utils._host import kvm_capability as K

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'fixtures', 'cpuinfo')
with open(os.path.join(FIXTURES, 'expected.json')) as _f:
    EXPECTED = json.load(_f)
DUMPS = {}
for _name in EXPECTED:
    with open(os.path.join(FIXTURES, _name)) as _f:
        DUMPS[_name] = _f.read()
ARCHES = {'x86_64', 'i686', 'aarch64', 'ppc64le', 's390x'}


def check_types(facts):
    assert facts['arch'] is None or facts['arch'] in ARCHES
    assert facts['cpu_vendor'] is None or isinstance(facts['cpu_vendor'], str)
    assert facts['cpu_model'] is None or isinstance(facts['cpu_model'], str)
    assert isinstance(facts['logical_cpus'], int) and facts['logical_cpus'] >= 0
    assert facts['virt_extension'] in (None, 'vmx', 'svm', 'sie')
    assert 0 <= facts['virt_flag_count']
    assert isinstance(facts['hypervisor'], bool)


dump_names = st.sampled_from(sorted(DUMPS))


@given(dump_names, st.floats(0, 1))
def test_truncated_dump_never_names_a_wrong_architecture(name, fraction):
    text = DUMPS[name][:int(len(DUMPS[name]) * fraction)]
    facts = parse_cpuinfo(text)
    check_types(facts)
    assert facts['arch'] in (None, EXPECTED[name]['arch']), (facts['arch'], text[-200:])
    assert facts['logical_cpus'] <= EXPECTED[name]['logical_cpus']
    assert facts['virt_flag_count'] <= max(facts['logical_cpus'], 1) * 2


@given(dump_names, st.data())
def test_garbled_lines_never_crash(name, data):
    lines = DUMPS[name].splitlines(True)
    ops = data.draw(st.lists(st.tuples(st.sampled_from(['drop', 'dup', 'garble', 'swap']),
                                       st.integers(0, max(len(lines) - 1, 0)),
                                       st.text(max_size=30)), max_size=12))
    for op, i, junk in ops:
        if not lines:
            break
        i %= len(lines)
        if op == 'drop':
            del lines[i]
        elif op == 'dup':
            lines.insert(i, lines[i])
        elif op == 'garble':
            lines[i] = lines[i][:len(lines[i]) // 2] + junk + '\n'
        else:
            lines[i], lines[-1] = lines[-1], lines[i]
    check_types(parse_cpuinfo(''.join(lines)))
    check_types(parse_cpuinfo(''.join(lines), arch=EXPECTED[name]['arch']))


@given(st.text(max_size=400))
def test_arbitrary_text_is_unrecognised_not_a_crash(text):
    facts = parse_cpuinfo(text)
    check_types(facts)
    assert infer_arch(text) == facts['arch']


@given(st.text(alphabet=st.characters(blacklist_characters=':'), max_size=300),
       st.binary(max_size=20).filter(lambda b: b':' not in b))
def test_text_without_fields_is_reported_unrecognised(text, junk):
    facts = parse_cpuinfo(text)
    assert facts['arch'] is None and facts['logical_cpus'] == 0
    assert facts['virt_extension'] is None
    # what kvm_capability_facts says about an inspected tree holding such a cpuinfo
    root = tempfile.mkdtemp(prefix='kvmops-cpuinfo-')
    try:
        os.makedirs(os.path.join(root, 'proc'))
        with open(os.path.join(root, 'proc', 'cpuinfo'), 'wb') as f:
            f.write(text.encode('utf-8', 'surrogatepass') + junk)
        facts = K.gather_kvm_capability(root=root, conn=None)
    finally:
        shutil.rmtree(root)
    assert facts['kvm_usable'] is False
    detail = [c for c in facts['checks'] if c['name'] == 'hardware virtualization'][0]['detail']
    assert 'unrecognised' in detail
