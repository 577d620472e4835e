"""Unit tests of _install_manager.normalize_install: the install option is validated before
anything is created (pure logic, real files in tmp_path; no libvirt)."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import install as im
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import manager as dman

SPEC = {'kernel': None}


def norm(params, spec=None, wait=0):
    return im.normalize_install(params, SPEC if spec is None else spec, wait)


def fails(params, *words, **kw):
    with pytest.raises(dman.DomainError) as exc:
        norm(params, kw.get('spec', SPEC), kw.get('wait', 0))
    for w in words:
        assert w in str(exc.value), str(exc.value)
    return str(exc.value)


def test_no_install_is_none():
    assert norm(None) is None and norm({}) is None


def test_exactly_one_source():
    fails({'location': 'http://x/', 'cdrom': '/x.iso'}, 'exactly one source', 'location, cdrom')
    fails({'pxe': False, 'import': False}, 'exactly one source', 'none')
    assert norm({'import': True})['source'] == 'import'
    assert norm({'pxe': True, 'import': False})['source'] == 'pxe'


def test_location_is_classified(tmp_path):
    out = norm({'location': 'https://mirror.example.org/centos/7/os/x86_64'}, wait=-1)
    assert (out['kind'], out['canonical']) == ('url', 'https://mirror.example.org/centos/7/os/x86_64/')
    assert out['wait'] == -1 and out['cache_dir'] == '/var/lib/libvirt/boot/kvmops'
    assert norm({'location': str(tmp_path)})['kind'] == 'dir'
    fails({'location': 'nfs://srv/x'}, 'nfs')


def test_extra_args_and_kickstart_need_a_location(tmp_path):
    iso = tmp_path / 'a.iso'
    iso.write_bytes(b'\0' * 32769 + b'CD001' + b'\0' * 64)
    fails({'cdrom': str(iso), 'extra_args': 'x'}, 'install.extra_args works only with install.location')
    fails({'pxe': True, 'kickstart': '/ks.cfg'}, 'install.kickstart works only with install.location')


def test_cdrom_checks(tmp_path):
    fails({'cdrom': 'relative.iso'}, 'absolute path')
    fails({'cdrom': str(tmp_path / 'missing.iso')}, 'does not exist')
    notiso = tmp_path / 'x.iso'
    notiso.write_bytes(b'x' * 40000)
    fails({'cdrom': str(notiso)}, 'neither an ISO 9660 nor a UDF image')
    udf = tmp_path / 'udf.iso'   # UDF without an ISO 9660 bridge (some Windows media)
    udf.write_bytes(b'\0' * (16 * 2048 + 1) + b'BEA01' + b'\0' * 2042 + b'\0NSR02' + b'\0' * 4096)
    assert norm({'cdrom': str(udf)})['source'] == 'cdrom'


def test_install_source_and_permanent_kernel_exclude_each_other():
    fails({'pxe': True}, 'cannot be combined', spec={'kernel': '/boot/vmlinuz'})
    assert norm({'import': True}, {'kernel': '/boot/vmlinuz'})['source'] == 'import'


def test_wait_and_extra_args_values(tmp_path):
    fails({'import': True}, 'wait=-5', wait=-5)
    assert norm({'import': True}, wait=None)['wait'] == 0
    fails({'location': str(tmp_path), 'extra_args': 'a<b'}, 'metacharacters')


def test_kickstart_is_read_and_named_never_echoed(tmp_path):
    ks = tmp_path / 'ks.cfg'
    ks.write_text('rootpw --plaintext TopSecret\n')
    out = norm({'location': str(tmp_path), 'kickstart': str(ks)})
    assert out['inject_name'] == 'ks.cfg'
    msg = fails({'location': str(tmp_path), 'kickstart': str(tmp_path / 'nope.cfg')}, 'nope.cfg')
    assert 'TopSecret' not in msg
    bad = tmp_path / 'bad name.cfg'
    bad.write_text('rootpw --plaintext TopSecret\n')  # the refused file holds the secret
    msg = fails({'location': str(tmp_path), 'kickstart': str(bad)}, 'plain file name')
    assert 'TopSecret' not in msg


def test_argument_spec_shape():
    spec = im.install_argument_spec()
    assert spec['type'] == 'dict'
    assert set(spec['options']) == {'location', 'cdrom', 'import', 'pxe', 'extra_args', 'kickstart',
                                    'cache_dir', 'validate_certs', 'timeout'}
    assert im.wait_argument_spec() == {'type': 'raw', 'default': 0}  # seconds or '90m'
