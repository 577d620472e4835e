"""_guest/options.py: the cloud options' argument spec, shared by virt_install_domain and each
guest of virt_install_domains, without the download code."""
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import base_image
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import options
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec


def test_base_cache_dir_default_is_the_base_image_cache():
    assert options.DEFAULT_BASE_CACHE_DIR == base_image.DEFAULT_CACHE_DIR


def test_guest_options_are_one_guest_plus_the_cloud_options():
    spec = options.guest_options()
    assert set(spec) == set(argspec.guest_options()) | set(options.argument_spec())
    assert spec['disks']['options']['base_image']['options']['checksum']['required'] is True
    assert 'base_image' not in argspec.guest_options()['disks']['options']  # not modified
    with_uri = options.with_cloud_options(argspec.domain_argument_spec())
    assert set(with_uri) == set(spec) | {'uri'}


def test_spec_and_cloud_gives_no_cloud_for_a_plain_guest():
    params = {'name': 'plain', 'disks': [{'path': '/i/p.img', 'size': 1, 'base_image': None}]}
    params = dict(dict((k, None) for k in options.guest_options()), **params)
    spec, cloud = options.spec_and_cloud(params)
    assert cloud is None and spec['disks'][0]['path'] == '/i/p.img'
