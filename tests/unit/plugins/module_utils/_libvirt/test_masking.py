"""The one masker: credentials in URLs, secrets in libvirt XML and in config comments."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import masking


@pytest.mark.parametrize('text, expected', [
    ('http://bob:S3cret@mirror.example/centos/7/', 'http://bob:********@mirror.example/centos/7/'),
    ('https://:tok@h/x', 'https://:********@h/x'),
    ('ftp://u:p@ss@h/file', 'ftp://u:********@h/file'),          # an unescaped @ in it
    ('qemu+ssh://root@hv1/system', 'qemu+ssh://root@hv1/system'),  # a user alone is no secret
    ('qemu+tcp://admin:pw@127.0.0.1:16509/system?no_verify=1',
     'qemu+tcp://admin:********@127.0.0.1:16509/system?no_verify=1'),
    ('http://host:8080/path@x', 'http://host:8080/path@x'),        # a port, then a path
    ('https://h/a:b@c', 'https://h/a:b@c'),                        # only the authority
    ("cannot fetch 'http://a:b@c/d' (404), retry http://e:f@g", "cannot fetch 'http://a:********@c/d' (404), "
     "retry http://e:********@g"),
    ('inst.repo=http://u:pw@10.0.0.1/os console=ttyS0', 'inst.repo=http://u:********@10.0.0.1/os console=ttyS0'),
    ('no url here: user:pass@host', 'no url here: user:pass@host'),
])
def test_mask_url_credentials(text, expected):
    assert masking.mask_url_credentials(text) == expected


def test_mask_url_credentials_passes_other_values_through():
    assert masking.mask_url_credentials(None) is None
    assert masking.mask_url_credentials(5) == 5


def test_mask_commented_settings_keeps_the_comment_and_the_line_ends():
    text = '#vnc_password = "old"\r\nx = 1 # spice_password=\'o\'  \n#vnc_password =\n'
    assert masking.mask_commented_settings(text, ['vnc_password', 'spice_password']) == \
        '#vnc_password = "********"\r\nx = 1 # spice_password="********"  \n#vnc_password =\n'
    assert masking.mask_commented_settings(text, []) == text


def test_url_secrets_walks_a_modules_options():
    """Issue 26: the passwords of every user:password@ URL among nested options."""
    params = {'install': {'location': 'https://u:p%40ss@mirror/x/'}, 'disks': [
        {'base_image': {'url': 'http://a:b:c@h/img'}}], 'name': 'no://url', 'other': 'x@y'}
    assert masking.url_secrets(params) == {'p%40ss', 'b:c'}
    assert masking.mask_url_credentials('fetch https://u:p%40ss@mirror/x/ failed') == \
        'fetch https://u:********@mirror/x/ failed'
