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
