"""virt_install_domain module: documentation matches the argument spec; bad input fails in
build_options before a connection is opened; the EXAMPLES are valid tasks."""
import pytest
import yaml

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.modules import virt_install_domain as mod
from support.module_docs import compare, documentation


def test_documentation_matches_argument_spec():
    # the options come from the doc fragments kvmops.hypervisor.guest and .libvirt
    compare(mod.argument_spec(), documentation(mod)['options'])


def test_password_is_no_log():
    assert mod.argument_spec()['graphics']['options']['password']['no_log'] is True


def test_examples_are_tasks_of_this_module():
    tasks = yaml.safe_load(mod.EXAMPLES)
    assert tasks and all('kvmops.hypervisor.virt_install_domain' in t for t in tasks)
    spec = mod.argument_spec()
    for t in tasks:
        assert set(t['kvmops.hypervisor.virt_install_domain']) <= set(spec), t['name']


class FakeModule(object):
    def __init__(self, params):
        self.params = params
        self.warnings = []

    def fail_json(self, **kw):
        raise AssertionError(kw['msg'])

    def warn(self, msg):
        self.warnings.append(msg)


def params(**kw):
    p = dict((k, v.get('default')) for k, v in mod.argument_spec().items())
    p.update(kw)
    return p


def test_build_spec_drops_unset_suboptions_and_fails_clearly():
    m = FakeModule(params(name='vm1', disks=[{'path': '/var/lib/libvirt/images/a.img',
                                              'size': 1.0, 'bus': None, 'format': None,
                                              'sparse': True, 'device': 'disk'}]))
    spec = mod.build_options(m).spec
    assert spec['disks'][0]['bus'] is None and spec['disks'][0]['size'] == 1024 ** 3
    with pytest.raises(KvmopsError, match='memory'):  # main() turns it into fail_json
        mod.build_options(FakeModule(params(name='vm1', memory='-1GiB')))


def test_public_vnc_with_password_warns():
    m = FakeModule(params(name='vm1', graphics={'type': 'vnc', 'listen': '0.0.0.0',
                                                'allow_insecure': True, 'password': 'abcdefgh'}))
    mod.build_options(m)
    assert m.warnings and '8 bytes' in m.warnings[0]


def test_public_vnc_without_tls_is_refused_unless_allowed():
    for listen in ('0.0.0.0', '::', '192.0.2.7'):
        with pytest.raises(KvmopsError, match='Refusing graphics.listen=%s' % listen):
            mod.build_options(FakeModule(params(name='vm1', graphics={'type': 'vnc',
                                                                      'listen': listen})))
    for listen in ('127.0.0.1', '127.0.0.9', '::1', None):
        mod.build_options(FakeModule(params(name='vm1', graphics={'type': 'vnc', 'listen': listen})))
