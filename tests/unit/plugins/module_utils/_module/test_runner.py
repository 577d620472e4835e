"""Unit tests of run_manager, every module's main() after its AnsibleModule. The module is a
small stand-in (AnsibleModule needs a real Ansible run); the connection is libvirt's own test
driver (test:///default), which needs no daemon."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._module import runner
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import connection as _conn
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

libvirt = pytest.importorskip('libvirt')
UNREACHABLE = 'qemu+unix:///system?socket=/nonexistent/kvmops-runner.sock'


class Exited(Exception):
    def __init__(self, kind, fields):
        super(Exited, self).__init__(kind)
        self.kind = kind
        self.fields = fields


class FakeModule(object):
    """What run_manager uses of AnsibleModule: params, check/diff mode, warn, exit/fail_json."""

    def __init__(self, uri='test:///default', check_mode=False, diff=False):
        self.params = {'uri': uri}
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)

    def exit_json(self, **fields):
        raise Exited('exit', fields)

    def fail_json(self, **fields):
        raise Exited('fail', fields)


class Manager(object):
    def __init__(self, conn, spec, outcome):
        self.conn = conn
        self.spec = spec
        self.outcome = outcome
        self.actions = ['defined']
        self.changed = True

    def run(self):
        return self.outcome(self)


def run(module, outcome, **kwargs):
    kwargs.setdefault('build', lambda conn, spec: Manager(conn, spec, outcome))
    with pytest.raises(Exited) as exited:
        runner.run_manager(module, **kwargs)
    return exited.value


def test_the_result_is_exited_with_and_its_warnings_are_warned():
    module = FakeModule()
    seen = {}

    def outcome(manager):
        seen['conn'] = manager.conn
        seen['spec'] = manager.spec
        assert manager.conn.getURI() == 'test:///default'
        return {'changed': True, 'warnings': ['mind the gap'], 'name': manager.spec['name']}
    out = run(module, outcome, prepare=lambda: {'name': 'vm1'})
    assert out.kind == 'exit'
    assert out.fields == {'changed': True, 'name': 'vm1'}
    assert module.warnings == ['mind the gap']
    assert seen['spec'] == {'name': 'vm1'}
    with pytest.raises(libvirt.libvirtError):  # the connection is closed after the run
        seen['conn'].getURI()


def test_bad_input_fails_before_a_connection_is_opened():
    def prepare():
        raise KvmopsError('memory=-1: give a positive size.', hint='memory')

    def build(conn, spec):
        raise AssertionError('no manager without a spec')
    calls = []
    out = run(FakeModule(uri=UNREACHABLE), None, build=build, prepare=prepare,
              fail_fields=lambda spec, manager: calls.append((spec, manager)) or {'name': 'x'})
    assert out.kind == 'fail'
    # not the connection error: the spec is checked first
    assert out.fields == {'msg': 'memory=-1: give a positive size.', 'hint': 'memory', 'name': 'x'}
    assert calls == [(None, None)]


def test_a_failing_run_reports_the_modules_fields_and_the_errors_own_win():
    module = FakeModule()

    def outcome(manager):
        raise KvmopsError('the pool is full: free space.', changed=False,
                          warnings=['pool almost full'])
    out = run(module, outcome, prepare=lambda: {'name': 'vm1'},
              fail_fields=lambda spec, manager: dict(name=spec['name'], actions=manager.actions,
                                                     changed=manager.changed))
    assert out.kind == 'fail'
    assert out.fields == {'msg': 'the pool is full: free space.', 'name': 'vm1',
                          'actions': ['defined'], 'changed': False}
    assert module.warnings == ['pool almost full']


def test_a_libvirt_error_during_the_run_names_the_subject_and_what_was_done():
    def outcome(manager):
        manager.conn.lookupByName('kvmops-runner-no-such-domain')
    out = run(FakeModule(), outcome, prepare=lambda: {'name': 'vm1'},
              subject=lambda spec: 'domain %s' % spec['name'])
    assert out.kind == 'fail'
    msg = out.fields['msg']
    assert msg.startswith('libvirt failed while handling domain vm1: ')
    assert 'Domain not found' in msg and 'Done before the failure: defined.' in msg


def test_without_a_subject_a_libvirt_error_is_not_hidden():
    def outcome(manager):
        manager.conn.lookupByName('kvmops-runner-no-such-domain')
    with pytest.raises(libvirt.libvirtError):
        runner.run_manager(FakeModule(), lambda conn, spec: Manager(conn, spec, outcome))


def test_an_unreachable_daemon_fails_with_the_connection_message():
    out = run(FakeModule(uri=UNREACHABLE), lambda manager: {},
              fail_fields=lambda spec, manager: {'changed': False})
    assert out.kind == 'fail'
    assert '/nonexistent/kvmops-runner.sock' in out.fields['msg']
    assert out.fields['changed'] is False


def test_without_connect_no_connection_is_opened_and_conn_is_none():
    out = run(FakeModule(uri=UNREACHABLE), lambda manager: {'conn': manager.conn},
              connect=False)
    assert out.kind == 'exit' and out.fields == {'conn': None}


def test_missing_libraries_fail_naming_the_package(monkeypatch):
    monkeypatch.setattr(lxml_util, 'HAS_LXML', False)
    out = run(FakeModule(), lambda manager: {})
    assert out.kind == 'fail' and 'lxml' in out.fields['msg']
    assert 'python3-lxml' in out.fields['msg']
    out = run(FakeModule(), lambda manager: {}, lxml=False)
    assert out.kind == 'exit'

    monkeypatch.setattr(_conn, 'HAS_LIBVIRT', False)
    out = run(FakeModule(), lambda manager: {}, lxml=False)
    assert out.kind == 'fail' and 'python3-libvirt' in out.fields['msg']
    out = run(FakeModule(), lambda manager: {}, lxml=False, connect=False)
    assert out.kind == 'exit'


def test_manager_options_come_from_the_module():
    module = FakeModule(check_mode=True, diff=True)
    options = runner.manager_options(module)
    assert options['check_mode'] is True and options['diff_mode'] is True
    options['warn']('hello')
    assert module.warnings == ['hello']
