"""The one guest argument spec (_guest/argspec.py) shared by both domain modules."""
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media


def test_install_cache_default_matches_the_media_code():
    assert argspec.DEFAULT_INSTALL_CACHE_DIR == media.DEFAULT_CACHE_DIR


def test_domain_spec_is_guest_options_plus_uri():
    spec = argspec.domain_argument_spec()
    assert set(spec) == set(argspec.guest_options()) | {'uri'}
    assert spec['graphics']['options']['password']['no_log'] is True


def test_without_defaults_keeps_nested_defaults():
    spec = argspec.without_defaults(argspec.guest_options())
    assert 'default' not in spec['state'] and 'required' not in spec['name']
    assert spec['disks']['options']['device']['default'] == 'disk'
    assert argspec.guest_options()['state']['default'] == 'running'  # the original untouched


def test_vnc_password_warning_only_off_loopback():
    assert argspec.vnc_password_warning({'graphics': {'type': 'vnc', 'password': 'x',
                                                      'listen': '127.0.0.1'}}) is None
    assert '8 bytes' in argspec.vnc_password_warning(
        {'graphics': {'type': 'vnc', 'password': 'x', 'listen': '0.0.0.0'}})
