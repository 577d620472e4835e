"""The one masker: user:password@ in URLs (issue 26)."""


def test_url_credentials_found_and_masked():
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import masking as m
    params = {'install': {'location': 'https://u:p%40ss@mirror/x/'}, 'disks': [
        {'base_image': {'url': 'http://a:b:c@h/img'}}], 'name': 'no://url', 'other': 'x@y'}
    assert m.url_secrets(params) == {'p%40ss', 'b:c'}
    assert m.mask_urls('fetch https://u:p%40ss@mirror/x/ failed') == \
        'fetch https://u:********@mirror/x/ failed'
