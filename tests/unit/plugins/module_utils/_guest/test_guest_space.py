"""Free-space preflight logic (a fake statvfs; the real one runs on a tmpfs in the
integration test test_virt_install_domain_free_space.py)."""
import os

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import space as P

MIB = 1024 ** 2


class Vfs(object):
    def __init__(self, free):
        self.f_bavail = free // 4096
        self.f_frsize = 4096


def plan(path, size, sparse=True, action='create', **more):
    p = {'kind': 'file', 'path': path, 'size': size, 'sparse': sparse, 'action': action,
         'label': path}
    p.update(more)
    return p


def statvfs(path):
    return Vfs(100 * MIB)


def test_full_images_must_fit(tmp_path):
    d = str(tmp_path)
    assert P.check([plan(d + '/a', 60 * MIB, False)], statvfs=statvfs) == []
    with pytest.raises(P.SpaceError) as exc:
        P.check([plan(d + '/a', 60 * MIB, False), plan(d + '/b', 60 * MIB, False)],
                statvfs=statvfs)
    assert d + '/a' in str(exc.value) and d + '/b' in str(exc.value)
    assert 'Nothing was created' in str(exc.value)


def test_sparse_images_warn_existing_ones_do_not_count(tmp_path):
    d = str(tmp_path)
    w = P.check([plan(d + '/a', 1024 * MIB)], statvfs=statvfs)
    assert len(w) == 1 and 'can grow to 1.00 GiB' in w[0]
    assert P.check([plan(d + '/a', 1024 * MIB, False, action='exists')], statvfs=statvfs) == []
    # a copy-on-write clone starts empty: sparse, whatever sparse says
    assert P.check([plan(d + '/c', 50 * MIB, False, backing_store='/b.qcow2')],
                   statvfs=statvfs) == []


def test_mount_point():
    assert P.mount_point('/') == '/'
    assert os.path.ismount(P.mount_point(os.getcwd()))


# ------------------------------------------------------------------ full clones (issue 30)
def _sparse_source(path, data_mib, size_mib=64):
    """A sparse file with data_mib MiB written (its allocated size is what a copy writes)."""
    with open(path, 'wb') as f:
        f.truncate(size_mib * MIB)
        f.write(b'x' * data_mib * MIB)
    return str(path)


def test_a_full_clone_counts_what_the_source_has_allocated_not_its_size(tmp_path):
    src = _sparse_source(tmp_path / 'tpl.img', 3)
    plans = [{'action': 'copy', 'kind': 'file', 'source': src, 'path': str(tmp_path / 'c.img')},
             {'action': 'link', 'kind': 'file', 'source': src, 'path': str(tmp_path / 'l.img')},
             {'action': 'share', 'source': '/iso/x.iso'}]
    copies = P.clone_copies(plans, None)
    assert [c['label'] for c in copies] == [str(tmp_path / 'c.img')]   # no overlay, no share
    assert 3 * MIB <= copies[0]['bytes'] < 8 * MIB       # allocated, not the 64 MiB size


def test_full_clone_copies_that_do_not_fit_are_refused_with_the_numbers(tmp_path):
    copies = [{'label': str(tmp_path / n), 'kind': 'file', 'path': str(tmp_path / n),
               'bytes': 60 * MIB, 'source_dev': None} for n in ('a.img', 'b.img')]
    assert P.check_copies(copies[:1], statvfs=statvfs) == []
    with pytest.raises(P.SpaceError) as exc:
        P.check_copies(copies, statvfs=statvfs)
    msg = str(exc.value)
    assert 'a.img' in msg and 'b.img' in msg and '0.12 GiB' in msg and '0.10 GiB free' in msg
    assert 'Nothing was copied' in msg and 'mode: linked' in msg
    assert exc.value.labels == [c['label'] for c in copies]


def test_a_copy_that_may_be_a_reflink_only_warns(tmp_path):
    dev = os.stat(str(tmp_path)).st_dev
    copy = {'label': str(tmp_path / 'a.img'), 'kind': 'file', 'path': str(tmp_path / 'a.img'),
            'bytes': 200 * MIB, 'source_dev': dev}
    with pytest.raises(P.SpaceError):   # ext4/tmpfs: a real copy
        P.check_copies([copy], statvfs=statvfs, fstype=lambda path: 'ext4')
    w = P.check_copies([copy], statvfs=statvfs, fstype=lambda path: 'btrfs')
    assert len(w) == 1 and 'reflink' in w[0] and '0.20 GiB' in w[0]
    # on another file system than the source's, btrfs copies for real too
    with pytest.raises(P.SpaceError):
        P.check_copies([dict(copy, source_dev=dev + 1)], statvfs=statvfs,
                       fstype=lambda path: 'btrfs')


def test_a_pool_volume_copy_counts_the_volume_allocation():
    class Vol(object):
        def info(self):
            return [0, 1024 * MIB, 30 * MIB]

    class Pool(object):
        def storageVolLookupByName(self, name):
            assert name == 'tpl.qcow2'
            return Vol()

        def info(self):
            return [2, 0, 0, 20 * MIB]

        def XMLDesc(self, flags):
            return '<pool/>'      # no target path: its info says the free space

    class Conn(object):
        def storagePoolLookupByName(self, name):
            return Pool()

        def getURI(self):
            return 'qemu+ssh://hv/system'
    plans = [{'action': 'volume-copy', 'kind': 'volume', 'pool': 'p', 'volume': 'tpl.qcow2',
              'new_volume': 'c.qcow2', 'source': 'p/tpl.qcow2'}]
    copies = P.clone_copies(plans, None, Conn())
    assert copies[0]['bytes'] == 30 * MIB and copies[0]['label'] == 'p/c.qcow2'
    with pytest.raises(P.SpaceError) as exc:
        P.check_copies(copies, Conn())
    assert 'storage pool p' in str(exc.value) and '0.02 GiB free' in str(exc.value)


def test_fs_type_reads_the_mount_table(tmp_path):
    mounts = tmp_path / 'mounts'
    mounts.write_text('rootfs / ext4 rw 0 0\n/dev/sdb1 / btrfs rw 0 0\n')
    assert P.fs_type('/', str(mounts)) == 'btrfs'      # the last mount on a point wins
    assert P.fs_type('/', str(tmp_path / 'none')) is None
