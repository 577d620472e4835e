"""Unit tests of _install/initrd_inject.py: the newc archive is checked against GNU cpio itself, the
injected copy keeps every byte of the original initrd, and file content never shows up in
names or errors. No mocks."""
import gzip
import os
import shutil
import subprocess

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import initrd_inject as inj

SECRET = b'rootpw --plaintext Kvm0ps-S3cret\n'
KS = b'# KVMOPS-KS kickstart\n' + SECRET


def test_newc_entry_layout():
    e = inj.newc_entry('ks.cfg', b'abc')
    assert e[:6] == b'070701'
    assert int(e[6 + 8 * 6:6 + 8 * 7], 16) == 3          # filesize
    assert int(e[6 + 8 * 11:6 + 8 * 12], 16) == 7        # namesize incl. NUL
    assert int(e[6 + 8 * 1:6 + 8 * 2], 16) == 0o100644   # regular file
    assert len(e) % 4 == 0
    assert e[110:117] == b'ks.cfg\0'


def test_archive_round_trip_and_trailer():
    blob = inj.newc_archive([('ks.cfg', KS), ('preseed.cfg', b'x' * 5)])
    assert blob.rstrip(b'\0').endswith(b'TRAILER!!!')
    assert inj.parse_newc(blob) == [('ks.cfg', 0o100644, KS), ('preseed.cfg', 0o100644, b'xxxxx')]


@pytest.mark.skipif(not shutil.which('cpio'), reason='GNU cpio not installed')
def test_gnu_cpio_extracts_what_we_write(tmp_path):
    blob = inj.newc_archive([('ks.cfg', KS), ('a.cfg', b'')])
    out = tmp_path / 'x'
    out.mkdir()
    subprocess.run(['cpio', '-i', '--quiet', '--no-absolute-filenames'], input=blob,
                   cwd=str(out), check=True)
    assert (out / 'ks.cfg').read_bytes() == KS
    assert (out / 'a.cfg').read_bytes() == b''


@pytest.mark.parametrize('name', ['', '.', '..', 'a/b', '/ks.cfg', 'ks cfg', 'x' * 200, '-x'])
def test_bad_names_are_refused(name):
    with pytest.raises(inj.InitrdInjectError):
        inj.check_inject_name(name)


def _initrd(tmp_path):
    p = tmp_path / 'initrd'
    p.write_bytes(gzip.compress(inj.newc_archive([('init', b'#!/bin/sh\n')])) + b'tail')
    return str(p)


def test_inject_appends_to_a_copy(tmp_path):
    initrd = _initrd(tmp_path)
    before = open(initrd, 'rb').read()
    ks = tmp_path / 'ks.cfg'
    ks.write_bytes(KS)
    files = inj.read_inject_files([str(ks)])

    path, created = inj.inject(initrd, files, check_mode=True)
    assert created and not os.path.exists(path)

    path, created = inj.inject(initrd, files)
    assert created and path != initrd
    assert open(initrd, 'rb').read() == before                 # original untouched
    data = open(path, 'rb').read()
    assert data.startswith(before)
    appended = gzip.decompress(data[len(before):])
    assert inj.parse_newc(appended) == [('ks.cfg', 0o100644, KS)]
    assert oct(os.stat(path).st_mode & 0o777) == '0o600'
    assert SECRET not in path.encode() and b'Kvm0ps' not in path.encode()
    assert [n for n in os.listdir(str(tmp_path)) if n.startswith('.')] == []

    again, created = inj.inject(initrd, files)
    assert again == path and not created

    ks.write_bytes(KS + b'# changed\n')
    other, created = inj.inject(initrd, inj.read_inject_files([str(ks)]))
    assert created and other != path


def test_injection_is_deterministic(tmp_path):
    # Same inputs give the same bytes (gzip mtime 0), so a re-run is comparable. Two calls in
    # the same second would match anyway: check the header's MTIME field (bytes 4-7) itself.
    blob = inj.gzip_bytes(b'abc')
    assert blob[:3] == b'\x1f\x8b\x08' and blob[4:8] == b'\x00\x00\x00\x00'
    assert blob == inj.gzip_bytes(b'abc')


def test_unreadable_file_error_names_the_path_only(tmp_path):
    with pytest.raises(inj.InitrdInjectError) as exc:
        inj.read_inject_files([str(tmp_path / 'missing.cfg')])
    assert 'missing.cfg' in str(exc.value)


def test_duplicate_names_are_refused(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    for d in ('a', 'b'):
        (tmp_path / d / 'ks.cfg').write_bytes(KS)
    with pytest.raises(inj.InitrdInjectError) as exc:
        inj.read_inject_files([str(tmp_path / 'a' / 'ks.cfg'), str(tmp_path / 'b' / 'ks.cfg')])
    assert 'Kvm0ps' not in str(exc.value)


def test_remove_injected_only_removes_copies(tmp_path):
    initrd = _initrd(tmp_path)
    ks = tmp_path / 'ks.cfg'
    ks.write_bytes(KS)
    path = inj.inject(initrd, inj.read_inject_files([str(ks)]))[0]
    assert inj.remove_injected(path) is True
    assert not os.path.exists(path) and os.path.exists(initrd)
    assert inj.remove_injected(path) is False
    assert inj.remove_injected(initrd) is False and os.path.exists(initrd)
