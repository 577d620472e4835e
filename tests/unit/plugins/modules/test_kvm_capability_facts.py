"""Unit tests of the kvm_capability_facts module's argument handling and results.

Runs main() in-process with ansible's patch_module_args. Hosts are fake trees in tmp_path
(a real cpuinfo dump from tests/fixtures/cpuinfo, a regular-file stand-in for /dev/kvm, a
synthetic /sys/module). libvirt is faked only where a missing binding or a refused
connection must be simulated (monkeypatched open_connection); the real daemon is used by
tests/integration/test_kvm_capability_facts.py.
"""
import contextlib
import json
import os

import pytest

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:   # ansible-core < 2.19 (make matrix runs 2.17 and 2.18): the older way
    from ansible.module_utils import basic as _basic

    @contextlib.contextmanager
    def patch_module_args(args):
        saved = _basic._ANSIBLE_ARGS
        _basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode()
        try:
            yield
        finally:
            _basic._ANSIBLE_ARGS = saved

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import connection as _libvirt_conn
from ansible_collections.kvmops.hypervisor.plugins.modules import kvm_capability_facts as mod

from support.paths import FIXTURES


def tree(tmp_path, cpuinfo, modules):
    root = tmp_path / 'host'
    (root / 'proc').mkdir(parents=True)
    with open(os.path.join(FIXTURES, 'cpuinfo', cpuinfo)) as f:
        (root / 'proc' / 'cpuinfo').write_text(f.read())
    for m in modules:
        (root / 'sys' / 'module' / m / 'parameters').mkdir(parents=True)
    (root / 'dev').mkdir()
    (root / 'dev' / 'kvm').write_text('')  # stand-in for the device node
    os.chmod(str(root / 'dev' / 'kvm'), 0o666)
    return str(root)


def run(capsys, args, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            mod.main()
    out = json.loads(capsys.readouterr().out)
    out['_rc'] = exc.value.code
    return out


@pytest.fixture
def no_libvirt_calls(monkeypatch):
    def boom(*a, **kw):
        raise AssertionError('libvirt must not be queried for an inspected tree')
    monkeypatch.setattr(mod, '_connect', boom)


def test_inspected_tree_without_kvm_gives_qemu(tmp_path, capsys, no_libvirt_calls):
    root = tree(tmp_path, 'vm-aws-ec2-xeon-8259cl.txt', ['kvm'])
    out = run(capsys, {'root': root})
    assert out['_rc'] == 0 and out['changed'] is False
    facts = out['ansible_facts']['kvm_capability']
    assert facts['domain_type'] == 'qemu' and facts['root'] == root
    assert facts['libvirt']['connected'] is False
    assert 'not installed' in facts['libvirt']['summary']  # the tree has no libvirtd


def test_require_kvm_fails_with_reasons_and_facts(tmp_path, capsys, no_libvirt_calls):
    root = tree(tmp_path, 'vm-aws-ec2-xeon-8259cl.txt', ['kvm'])
    out = run(capsys, {'root': root, 'require': 'kvm'})
    assert out['_rc'] == 1 and out['failed'] is True
    assert out['msg'].startswith('KVM is not usable on this host')
    assert 'no vmx/svm flag' in out['msg'] and 'itself a virtual machine' in out['msg']
    assert out['ansible_facts']['kvm_capability']['kvm_usable'] is False


def test_require_kvm_passes_on_kvm_host(tmp_path, capsys, no_libvirt_calls):
    root = tree(tmp_path, 'intel-xeon-gold-6230-80cpu.txt', ['kvm', 'kvm_intel'])
    out = run(capsys, {'root': root, 'require': 'kvm'})
    assert out['_rc'] == 0
    assert out['ansible_facts']['kvm_capability']['domain_type'] == 'kvm'


def test_check_mode_returns_the_same_facts(tmp_path, capsys, no_libvirt_calls):
    root = tree(tmp_path, 'amd-epyc-7451-96cpu.txt', ['kvm', 'kvm_amd'])
    normal = run(capsys, {'root': root})
    checked = run(capsys, {'root': root}, check_mode=True)
    assert checked['changed'] is False
    assert checked['ansible_facts'] == normal['ansible_facts']


def test_root_must_be_a_directory(tmp_path, capsys, no_libvirt_calls):
    out = run(capsys, {'root': str(tmp_path / 'nope')})
    assert out['failed'] is True and 'is not a directory' in out['msg']


def test_bad_require_value_fails_before_anything(capsys, no_libvirt_calls):
    out = run(capsys, {'require': 'yes'})
    assert out['failed'] is True and 'require' in out['msg']


def test_connect_without_libvirt_python(monkeypatch):
    monkeypatch.setattr(_libvirt_conn, 'HAS_LIBVIRT', False)
    conn, error = mod._connect('qemu:///system')
    assert conn is None and 'python3-libvirt' in error


def test_connect_falls_back_to_read_only(monkeypatch):
    calls = []

    def fake_open(uri, read_only=False):
        calls.append(read_only)
        if not read_only:
            raise _libvirt_conn.LibvirtConnectionError('Cannot connect: authentication failed')
        return 'ro-conn'
    monkeypatch.setattr(_libvirt_conn, 'HAS_LIBVIRT', True)
    monkeypatch.setattr(_libvirt_conn, 'open_connection', fake_open)
    assert mod._connect('qemu:///system') == ('ro-conn', None)
    assert calls == [False, True]


def test_live_host_with_refused_connection_reports_not_fails(monkeypatch, capsys):
    """Live / tree (read only), libvirt refused: the facts say so and the module succeeds."""
    def refused(uri, read_only=False):
        raise _libvirt_conn.LibvirtConnectionError('Cannot connect to libvirt at %s: refused' % uri)
    monkeypatch.setattr(_libvirt_conn, 'HAS_LIBVIRT', True)
    monkeypatch.setattr(_libvirt_conn, 'open_connection', refused)
    out = run(capsys, {'uri': 'qemu:///system'})
    assert out['_rc'] == 0
    lv = out['ansible_facts']['kvm_capability']['libvirt']
    assert lv['connected'] is False
    assert 'did not answer on qemu:///system' in lv['summary'] and 'refused' in lv['summary']
