"""Property-based tests (hypothesis) of the install-tree layout detectors and .treeinfo parser.

Generated install trees (a random subset of every known layout's kernel/initrd paths, junk
files, a generated or truncated .treeinfo) are detected as the first complete layout or
refused with InstallMediaError listing the paths tried; generated .treeinfo text and ISO
listings never raise; a .treeinfo can never point outside the tree (../, absolute paths),
and neither can a symlink in a directory tree.
"""
import os
import shutil
import tempfile

import pytest

from hypothesis import given, strategies as st

from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media as m

ALL_CANDIDATES = m.layout_candidates('x86_64')
CANDIDATE_FILES = sorted(set(p for c in ALL_CANDIDATES for p in c[1:]))
ARCHES = ['x86_64', 'aarch64', 'ppc64le', 's390x', 'i686', 'riscv64', 'weird']


def _write(root, rel, data=b'x'):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


treeinfo_lines = st.sampled_from([
    '[general]', '[tree]', 'arch = x86_64', 'arch = aarch64', '[images-x86_64]',
    '[images-aarch64]', 'kernel = images/pxeboot/vmlinuz', 'initrd = images/pxeboot/initrd.img',
    'kernel = ../../etc/shadow', 'initrd = /etc/passwd', 'kernel = images/../../../x',
    'initrd = a/b/../../../c', '[checksums]', 'images/pxeboot/vmlinuz = sha256:00',
    'kernel =', '= x', '[', 'family = suse', '%(x)s = y', 'kernel = \x00', 'initrd = ' + 'a' * 300,
])
treeinfo = st.one_of(st.lists(treeinfo_lines, max_size=10).map('\n'.join),
                     st.text(max_size=200)).map(lambda t: t.encode('utf-8', 'surrogatepass'))


@given(treeinfo, st.sampled_from(ARCHES), st.integers(0, 300))
def test_treeinfo_never_raises_nor_escapes(text, arch, cut):
    parsed = m.parse_treeinfo(text[:cut] if cut else text, arch)
    if parsed is not None:
        kernel, initrd, sums = parsed
        for rel in (kernel, initrd):
            assert not rel.startswith('/') and '..' not in rel.split('/')
        assert isinstance(sums, dict)


@given(st.sets(st.sampled_from(CANDIDATE_FILES + ['junk', 'images/x', 'current/']), max_size=8),
       st.one_of(st.none(), treeinfo), st.sampled_from(ARCHES))
def test_dir_layout_is_first_complete_candidate_or_a_clear_error(files, ti, arch):
    root = tempfile.mkdtemp(prefix='kvmops-tree-')
    try:
        for rel in files:
            if not rel.endswith('/'):
                _write(root, rel)
        if ti is not None:
            _write(root, '.treeinfo', ti)
        tree = m._DirTree(root)
        try:
            layout, krel, irel, sums = m.find_layout(tree, arch, root)
        except m.InstallMediaError as exc:
            msg = str(exc)
            assert 'Cannot find an installer kernel and initrd' in msg and 'Paths tried' in msg
            static = [c for c in m.layout_candidates(arch)
                      if c[1] in files and c[2] in files]
            assert not static
            return
        assert os.path.isfile(os.path.join(root, krel)) and os.path.isfile(os.path.join(root, irel))
        assert layout in ('redhat', 'debian', 'ubuntu', 'suse')
        for rel in (krel, irel):
            assert os.path.realpath(os.path.join(root, rel)).startswith(root + os.sep)
    finally:
        shutil.rmtree(root)


@given(st.sampled_from(['xorriso', 'bsdtar', 'isoinfo']), st.text(max_size=300))
def test_iso_listing_never_raises(tool, text):
    files = m.parse_iso_listing(tool, text)
    assert all(f and not f.startswith('/') for f in files)


@given(st.one_of(st.text(max_size=60), st.sampled_from([
    'http://', 'ftp://x', 'file://', 'file:///nonexistent', 'gopher://x/', '../tree',
    '/dev/null', '/proc/self/environ', 'HTTP://127.0.0.1/a', ' http://127.0.0.1/ ', '\x00'])))
def test_classify_location_raises_only_install_media_error(location):
    try:
        kind, source = m.classify_location(location)
    except m.InstallMediaError as exc:
        assert str(exc)
        return
    except ValueError as exc:
        # embedded NUL: os.path refuses it; must be a handled error instead
        pytest.fail('classify_location(%r) raised %r' % (location, exc))
    assert kind in ('url', 'dir', 'iso')


def test_a_symlink_in_a_dir_tree_cannot_reach_outside(tmp_path):
    secret = tmp_path / 'secret'
    secret.write_bytes(b'root:$6$hash')
    root = tmp_path / 'tree'
    (root / 'images' / 'pxeboot').mkdir(parents=True)
    (root / 'images' / 'pxeboot' / 'vmlinuz').symlink_to(secret)
    (root / 'images' / 'pxeboot' / 'initrd.img').write_bytes(b'initrd')
    with pytest.raises(m.InstallMediaError) as exc:
        m.resolve_location(str(root), cache_dir=str(tmp_path / 'cache'))
    assert 'outside' in str(exc.value)
    assert not any(b'root:' in p.read_bytes() for p in (tmp_path / 'cache').rglob('*')
                   if p.is_file())
