"""Unit tests of the /proc/cpuinfo parser over real-world dumps (tests/fixtures/cpuinfo, see its
MANIFEST.md). Nothing is mocked: the parser is pure logic over the fixture text."""
import json
import os

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._host.cpuinfo import infer_arch, parse_cpuinfo

from support.paths import FIXTURES

CPUINFO = os.path.join(FIXTURES, 'cpuinfo')
with open(os.path.join(CPUINFO, 'expected.json')) as _f:
    EXPECTED = json.load(_f)


def _text(name):
    with open(os.path.join(CPUINFO, name)) as f:
        return f.read()


def test_every_fixture_is_covered():
    dumps = sorted(f for f in os.listdir(CPUINFO) if f.endswith('.txt'))
    assert dumps == sorted(EXPECTED)
    assert len(dumps) == 12


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_facts_match_manifest_without_arch_hint(name):
    """arch inferred from the dump itself (as for an inspected tree without uname)."""
    exp = EXPECTED[name]
    got = parse_cpuinfo(_text(name))
    assert got['arch'] == exp['arch']
    assert got['cpu_vendor'] == exp['vendor']
    assert got['logical_cpus'] == exp['logical_cpus']
    assert got['virt_extension'] == exp['virt_extension']
    assert got['virt_flag_count'] == exp['flag_count']
    assert got['hypervisor'] is exp['hypervisor_flag']


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_facts_match_manifest_with_arch_hint(name):
    exp = EXPECTED[name]
    got = parse_cpuinfo(_text(name), arch=exp['arch'])
    assert (got['virt_flag_count'], got['logical_cpus']) == (exp['flag_count'], exp['logical_cpus'])


def test_vmx_flags_lines_are_not_counted_as_cpus():
    """Linux >= 5.x 'vmx flags' lines: a naive grep says 40 on this 20-CPU hybrid laptop."""
    text = _text('intel-core-i7-1370p-hybrid-pe.txt')
    assert sum(1 for line in text.splitlines() if line.startswith('vmx flags')) == 20
    got = parse_cpuinfo(text)
    assert got['naive_line_count'] == 40
    assert got['virt_flag_count'] == 20 == got['logical_cpus']


def test_s390x_sie_in_machine_wide_line_counts_every_cpu():
    got = parse_cpuinfo(_text('s390x-z13-lpar-sie.txt'))
    assert got['naive_line_count'] == 1
    assert (got['virt_extension'], got['virt_flag_count'], got['logical_cpus']) == ('sie', 8, 8)
    assert got['cpu_model'] == 'IBM z13'


def test_s390x_without_sie():
    text = _text('s390x-z13-lpar-sie.txt').replace(' sie ', ' ')
    got = parse_cpuinfo(text)
    assert (got['virt_extension'], got['virt_flag_count']) == (None, 0)


@pytest.mark.parametrize('name, model', [
    ('intel-xeon-gold-6230-80cpu.txt', 'Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz'),
    ('intel-core-i5-m560-laptop.txt', 'Intel(R) Core(TM) i5 CPU M 560 @ 2.67GHz'),
    ('amd-epyc-7451-96cpu.txt', 'AMD EPYC 7451 24-Core Processor'),
    ('vm-kvm-qemu-skylake-ibrs.txt', 'Intel Core Processor (Skylake, IBRS)'),
    ('arm64-kunpeng920-128cpu.txt', 'HiSilicon Kunpeng 920'),
    ('arm64-processor-header-oneplus3t.txt', 'Qualcomm Kryo'),
    ('ppc64le-power9-ac922-176cpu.txt', 'POWER9 (8335-GTW)'),
])
def test_cpu_model(name, model):
    assert parse_cpuinfo(_text(name))['cpu_model'] == model


def test_capitalised_processor_header_is_not_a_cpu():
    """Old arm64 kernels print 'Processor : AArch64 ...' before the per-CPU blocks."""
    text = 'Processor\t: AArch64 Processor rev 4 (aarch64)\n' + _text('arm64-processor-header-oneplus3t.txt')
    got = parse_cpuinfo(text)
    assert got['logical_cpus'] == 4
    assert got['arch'] == 'aarch64'


def test_svm_and_hypervisor_flags_on_synthetic_nested_guest():
    """A nested-virt guest: the hypervisor flag AND svm (pure logic, synthetic two-CPU text)."""
    block = 'processor\t: %d\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu lm svm hypervisor\n\n'
    got = parse_cpuinfo(block % 0 + block % 1)
    assert (got['virt_extension'], got['virt_flag_count'], got['hypervisor']) == ('svm', 2, True)


def test_empty_or_unknown_text():
    got = parse_cpuinfo('')
    assert got['arch'] is None and got['logical_cpus'] == 0 and got['virt_extension'] is None
    assert infer_arch('nothing: here\n') is None
