"""Names and paths that try to escape, on the real file system (no mocks).

../ in names and pool volumes, absolute names where a file name is expected, symlinks in an
image directory pointing outside it, and disk paths that are devices: each is refused
before anything is created (SpecError / StorageError naming the path and the fix), or, for
../ inside an absolute path, normalised so that what libvirt gets is the path reported.
"""
import os

import pytest

from hypothesis import given, strategies as st

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as S
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import storage as ST
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import initrd_inject as INJ


@pytest.mark.parametrize('name', ['../x', '..', 'a/b', '/etc/passwd', 'x/../../y', '.hidden'])
def test_domain_names_cannot_be_paths(name):
    with pytest.raises(S.SpecError, match='name'):
        A.normalize({'name': name})


@pytest.mark.parametrize('volume', ['../x', '/etc/shadow', 'a/b'])
def test_pool_volume_must_be_a_name(volume):
    with pytest.raises(S.SpecError, match='must be a name'):
        A.normalize({'name': 'v', 'disks': [{'pool': 'default', 'volume': volume, 'size': 1}]})


@pytest.mark.parametrize('name', ['../ks.cfg', '/ks.cfg', '..', '.', 'a/ks.cfg', ''])
def test_injected_file_names_are_plain(name):
    with pytest.raises(INJ.InitrdInjectError):
        INJ.check_inject_name(name)


@given(st.lists(st.sampled_from(['..', '.', 'a', 'img', '', 'b.img']), min_size=1, max_size=8))
def test_dotdot_in_a_path_is_normalised_never_passed_on(parts):
    path = '/' + '/'.join(parts)
    try:
        spec = A.normalize({'name': 'n', 'disks': [{'path': path, 'size': 1}]})
    except S.SpecError as exc:
        assert 'root directory' in str(exc) or 'both use' in str(exc)
        return
    got = spec['disks'][0]['path']
    assert got == '/' + os.path.normpath(path).lstrip('/') and '..' not in got.split('/')


def test_relative_paths_are_refused():
    for opt in ({'kernel': 'vmlinuz'}, {'serial': 'log/x'},
                {'disks': [{'path': 'img/a.img', 'size': 1}]}):
        with pytest.raises(S.SpecError, match='relative path'):
            A.normalize(dict({'name': 'r'}, **opt))


def _plan(path, size=1):
    spec = A.normalize({'name': 'p', 'disks': [{'path': path, 'size': size}]})
    return ST.plan_disks(spec['disks'])


def test_symlink_in_image_dir_pointing_outside_is_refused(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    secret = tmp_path / 'shadow'
    secret.write_bytes(b'root:x:0:0')
    (images / 'evil.img').symlink_to(secret)
    with pytest.raises(ST.StorageError, match='symlink to .*outside its directory'):
        _plan(str(images / 'evil.img'))
    assert secret.read_bytes() == b'root:x:0:0'


def test_dangling_symlink_is_refused_not_followed(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    (images / 'new.img').symlink_to(tmp_path / 'elsewhere' / 'new.img')
    with pytest.raises(ST.StorageError, match='symlink'):
        _plan(str(images / 'new.img'))
    assert not (tmp_path / 'elsewhere').exists()


def test_symlink_inside_the_same_directory_is_fine(tmp_path):
    (tmp_path / 'real.img').write_bytes(b'\0' * 1024)
    (tmp_path / 'alias.img').symlink_to(tmp_path / 'real.img')
    assert _plan(str(tmp_path / 'alias.img'))[0]['action'] == 'exists'


@pytest.mark.parametrize('device', ['/dev/null', '/dev/zero', '/dev/kvm'])
def test_a_device_is_not_a_disk_image(device):
    if not os.path.exists(device):
        pytest.skip('%s missing' % device)
    with pytest.raises(ST.StorageError, match='device'):
        _plan(device)


def test_a_fifo_is_not_a_disk_image(tmp_path):
    fifo = tmp_path / 'pipe.img'
    os.mkfifo(str(fifo))
    with pytest.raises(ST.StorageError, match='special file'):
        _plan(str(fifo))


def test_partial_image_of_a_dead_run_is_removed_and_never_at_the_disk_path(tmp_path):
    """A run killed mid-creation leaves only a hidden partial file; the next run removes it
    (its process is gone) and creates the image; a live run's partial file is left alone."""
    path = str(tmp_path / 'vm.img')
    dead = ST._partial_name(path, pid=2 ** 22 + 12345)  # above pid_max: never a live process
    live = ST._partial_name(path, pid=1)  # a live process (init): its file stays
    for p in (dead, live):
        with open(p, 'wb') as f:
            f.write(b'half')
    plans = _plan(path, size=0.001)
    assert plans[0]['action'] == 'create'
    ST.create_missing(plans)
    assert not os.path.exists(dead)
    assert os.path.getsize(path) == plans[0]['size']
    assert sorted(os.listdir(str(tmp_path))) == sorted(['vm.img', os.path.basename(live)])
    with pytest.raises(ST.StorageError, match='already exists'):
        ST.create_missing(plans)
