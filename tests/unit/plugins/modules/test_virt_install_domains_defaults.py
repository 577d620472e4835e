"""virt_install_domains' defaults: a plain dict in the argument spec (the guest options are
documented once, under guests[]), so the module checks it and masks its no_log values itself
(issue 27 point 8). main() runs in-process; it fails on the options before any libvirt
connection, so no daemon is needed."""
import contextlib
import json

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

from ansible.module_utils import basic

from ansible_collections.kvmops.hypervisor.plugins.modules import virt_install_domains as mod

VNC = 'VncDefault-7f3a9c'
CLOUD = 'CloudDefault-52be1d'


def run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            mod.main()
    out = json.loads(capsys.readouterr().out)
    out['_rc'] = exc.value.code
    return out


def defaults(**extra):
    return dict({'graphics': {'type': 'vnc', 'listen': '127.0.0.1', 'password': VNC},
                 'cloud_init': {'password': CLOUD}}, **extra)


def test_defaults_secrets_are_masked_in_the_logged_invocation_and_the_result(
        capsys, monkeypatch):
    logged = []
    monkeypatch.setattr(basic.AnsibleModule, 'log',
                        lambda self, msg, log_args=None: logged.append((msg, log_args)))
    out = run(capsys, {'defaults': defaults(memroy=512),
                       'guests': [{'name': 'g1'}], 'uri': 'test:///default'})
    assert logged, 'AnsibleModule logs its invocation (syslog/journal on the host)'
    text = json.dumps(logged) + json.dumps(out)
    assert VNC not in text and CLOUD not in text
    assert 'NOT_LOGGING_PASSWORD' in json.dumps(logged) or '********' in json.dumps(logged)
    # and the invocation in the result still shows the rest of defaults
    assert out['invocation']['module_args']['defaults']['graphics']['listen'] == '127.0.0.1'


def test_an_unknown_option_in_defaults_fails_once_naming_defaults(capsys):
    out = run(capsys, {'defaults': {'memroy': 512},
                       'guests': [{'name': 'g1'}, {'name': 'g2'}], 'uri': 'test:///default'})
    assert out['failed'] is True and out['changed'] is False
    assert out['msg'].startswith('defaults: Unsupported parameters')
    assert 'memroy' in out['msg'] and 'nothing was created' in out['msg']


def test_a_wrong_type_in_defaults_is_refused_as_in_guests(capsys):
    out = run(capsys, {'defaults': {'vcpus': 'many'}, 'guests': [{'name': 'g1'}],
                       'uri': 'test:///default'})
    assert out['failed'] is True
    assert out['msg'].startswith('defaults: ') and 'vcpus' in out['msg']
    assert "'many'" in out['msg'] or 'int' in out['msg']
