"""Disk planning and creation (real files in a temporary directory; qemu-img when present)."""
import os
import shutil
import subprocess

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import storage as ST

GIB = 1024 ** 3
QEMU_IMG = shutil.which('qemu-img')


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, check=False)
    return p.returncode, p.stdout, p.stderr


def disks(*items):
    return A.normalize({'name': 'vm', 'disks': list(items)})['disks']


def test_plan_is_read_only(tmp_path):
    before = sorted(os.listdir(tmp_path))
    plans = ST.plan_disks(disks({'path': str(tmp_path / 'a.img'), 'size': 100},
                                {'path': str(tmp_path / 'b.qcow2'), 'size': 1,
                                 'format': 'qcow2'}))
    assert [p['action'] for p in plans] == ['create', 'create']
    assert sorted(os.listdir(tmp_path)) == before


def test_100_gib_sparse_raw_costs_nothing(tmp_path):
    path = tmp_path / 'big.img'
    plans = ST.plan_disks(disks({'path': str(path), 'size': 100}))
    assert ST.create_missing(plans) == [str(path)]
    st = os.stat(path)
    assert st.st_size == 100 * GIB
    assert st.st_blocks * 512 < 1024 * 1024  # sparse: no data blocks
    assert ST.probe_image(str(path)) == ('raw', 100 * GIB)


def test_preallocated_raw(tmp_path):
    path = tmp_path / 'full.img'
    ST.create_missing(ST.plan_disks(disks({'path': str(path), 'size': 0.01, 'sparse': False})))
    st = os.stat(path)
    assert st.st_blocks * 512 >= st.st_size


def test_existing_image_never_overwritten_growth_reported(tmp_path):
    path = tmp_path / 'data.img'
    with open(path, 'wb') as f:
        f.write(b'precious' * 128)
        f.truncate(GIB)
    plans = ST.plan_disks(disks({'path': str(path), 'size': 2}))
    assert plans[0]['action'] == 'exists' and plans[0]['growth'] is True
    assert ST.create_missing(plans) == []
    with open(path, 'rb') as f:
        assert f.read(8) == b'precious'
    assert os.path.getsize(path) == GIB
    report = ST.report(plans)[0]
    assert report['size_gib'] == 1 and report['growth_requested_gib'] == 2
    assert 'never resizes' in ST.growth_warnings(plans)[0]


def test_smaller_size_is_refused_not_applied(tmp_path):
    path = tmp_path / 'data.img'
    with open(path, 'wb') as f:
        f.truncate(2 * GIB)
    plans = ST.plan_disks(disks({'path': str(path), 'size': 1}))
    assert plans[0]['shrink_refused'] and 'never shrinks' in ST.growth_warnings(plans)[0]


def test_create_never_clobbers_a_file_that_appeared_after_planning(tmp_path):
    path = tmp_path / 'race.img'
    plans = ST.plan_disks(disks({'path': str(path), 'size': 1}))
    path.write_bytes(b'appeared')
    with pytest.raises(ST.StorageError, match='nothing was overwritten'):
        ST.create_missing(plans)
    assert path.read_bytes() == b'appeared'


@pytest.mark.parametrize('disk,match', [
    ({'size': None}, 'no size was given'),
    ({'path_dir': 'missing-dir', 'size': 1}, 'does not exist'),
    ({'backing_store': '/nonexistent/base.qcow2'}, 'backing_store'),
])
def test_plan_errors(tmp_path, disk, match):
    d = {'path': str(tmp_path / disk.pop('path_dir', '') / 'x.img')}
    d.update((k, v) for k, v in disk.items() if v is not None)
    with pytest.raises(ST.StorageError, match=match):
        ST.plan_disks(disks(d))


def test_missing_iso(tmp_path):
    with pytest.raises(ST.StorageError, match='CD-ROM image'):
        ST.plan_disks(disks({'path': str(tmp_path / 'x.iso'), 'device': 'cdrom'}))


@pytest.mark.skipif(not QEMU_IMG, reason='qemu-img not installed')
def test_qcow2_and_backing_store_clone(tmp_path):
    base = tmp_path / 'base.img'
    with open(base, 'wb') as f:
        f.truncate(GIB)
    qcow = tmp_path / 'data.qcow2'
    clone = tmp_path / 'clone.qcow2'
    plans = ST.plan_disks(disks({'path': str(qcow), 'size': 3, 'format': 'qcow2'},
                                {'path': str(clone), 'backing_store': str(base),
                                 'backing_format': 'raw'}))
    assert plans[1]['format'] == 'qcow2' and plans[1]['size'] == GIB
    ST.create_missing(plans, run_command=run, qemu_img=QEMU_IMG)
    assert ST.probe_image(str(qcow)) == ('qcow2', 3 * GIB)
    assert ST.probe_image(str(clone)) == ('qcow2', GIB)
    info = run([QEMU_IMG, 'info', '--output=json', str(clone)])[1]
    assert str(base) in info and '"backing-filename-format": "raw"' in info
    # the format of an existing image never comes from its header (issue 26): format=raw
    # is honoured, no format and no record is refused, a record wins and must match
    assert ST.plan_disks(disks({'path': str(qcow), 'format': 'raw'}))[0]['format'] == 'raw'
    assert ST.plan_disks(disks({'path': str(qcow), 'format': 'qcow2'}))[0]['size'] == 3 * GIB
    with pytest.raises(ST.StorageError, match='never takes a format from them'):
        ST.plan_disks(disks({'path': str(qcow)}))
    known = {str(qcow): ('qcow2', 'record')}
    assert ST.plan_disks(disks({'path': str(qcow)}), known=known)[0]['format'] == 'qcow2'
    with pytest.raises(ST.StorageError, match='already exists as a qcow2 image'):
        ST.plan_disks(disks({'path': str(qcow), 'format': 'raw'}), known=known)
    known = {str(qcow): ('qcow2', 'definition')}
    assert ST.plan_disks(disks({'path': str(qcow)}), known=known)[0]['format'] == 'qcow2'


def test_forged_qcow2_header_on_a_raw_disk_stays_raw(tmp_path):
    """A guest writes a qcow2 header with a backing file onto its raw disk: the record (raw)
    wins, the header is never the format."""
    disk = tmp_path / 'raw.img'
    with open(disk, 'wb') as f:
        f.write(ST.QCOW2_MAGIC + b'\x00\x00\x00\x03' + (512).to_bytes(8, 'big')
                + (11).to_bytes(4, 'big') + b'\x00' * 4 + (5 * GIB).to_bytes(8, 'big'))
        f.truncate(GIB)
    assert ST.read_header(str(disk)) == ('qcow2', 5 * GIB, True)
    plan = ST.plan_disks(disks({'path': str(disk)}), known={str(disk): ('raw', 'record')})[0]
    assert plan['format'] == 'raw' and plan['size'] == GIB
    plan = ST.plan_disks(disks({'path': str(disk), 'format': 'raw'}))[0]
    assert plan['format'] == 'raw'
    with pytest.raises(ST.StorageError, match='format=raw if it is a raw disk'):
        ST.plan_disks(disks({'path': str(disk)}))


def test_qcow2_without_qemu_img_fails_cleanly(tmp_path):
    path = tmp_path / 'x.qcow2'
    plans = ST.plan_disks(disks({'path': str(path), 'size': 1, 'format': 'qcow2'}))
    with pytest.raises(ST.StorageError, match='qemu-img is needed'):
        ST.create_missing(plans, run_command=run, qemu_img=None)
    assert not path.exists()


def test_removable_storage_skips_cdroms_and_readonly():
    from lxml import etree
    tree = etree.fromstring(b"""<domain><devices>
      <disk type='file' device='disk'><source file='/i/a.img'/></disk>
      <disk type='file' device='cdrom'><source file='/i/a.iso'/><readonly/></disk>
      <disk type='file' device='disk'><source file='/i/base.img'/><readonly/></disk>
      <disk type='volume' device='disk'><source pool='p' volume='v'/></disk>
    </devices></domain>""")
    assert ST.removable_storage(tree) == (['/i/a.img'], [('p', 'v')])


def test_removable_storage_keeps_shared_read_only_and_cdrom_disks():
    """remove_storage never deletes a <shareable/> disk (another guest, or a clone's template,
    may use it), a read-only one or a CD-ROM (issue 26)."""
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
    tree = lxml_util.parse(
        "<domain><devices>"
        "<disk type='file' device='disk'><source file='/i/own.img'/></disk>"
        "<disk type='file' device='disk'><source file='/i/shared.img'/><shareable/></disk>"
        "<disk type='file' device='disk'><source file='/i/ro.img'/><readonly/></disk>"
        "<disk type='file' device='cdrom'><source file='/i/x.iso'/></disk>"
        "<disk type='volume' device='disk'><source pool='p' volume='v'/></disk>"
        "<disk type='volume' device='disk'><source pool='p' volume='sv'/><shareable/></disk>"
        "</devices></domain>")
    assert ST.removable_storage(tree) == (['/i/own.img'], [('p', 'v')])


# ---------------------------------------------------------------- issue 26: base images

@pytest.mark.skipif(not QEMU_IMG, reason='qemu-img not installed')
def test_a_base_image_format_is_the_users_never_its_headers(tmp_path):
    secret = tmp_path / 'host-secret'
    secret.write_text('HOST SECRET')
    raw = tmp_path / 'raw.img'
    with open(raw, 'wb') as f:
        f.truncate(GIB)
    good = tmp_path / 'good.qcow2'
    run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', str(good), '2G'])
    chained = tmp_path / 'chained.qcow2'
    run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', '-b', str(secret), '-F', 'raw', str(chained)])
    datafile = tmp_path / 'datafile.qcow2'
    run([QEMU_IMG, 'create', '-q', '-f', 'qcow2', '-o', 'data_file=%s' % (tmp_path / 'data'),
         str(datafile), '64M'])

    def plan(base, fmt=None):
        d = {'path': str(tmp_path / 'clone.qcow2'), 'backing_store': str(base)}
        if fmt:
            d['backing_format'] = fmt
        return ST.plan_disks(disks(d))[0]
    # default qcow2: a good qcow2 base; its size from the header it was checked by
    p = plan(good)
    assert p['backing_format'] == 'qcow2' and p['size'] == 2 * GIB
    # a raw base must be said to be raw; then it is raw
    with pytest.raises(ST.StorageError, match='set backing_format: raw'):
        plan(raw)
    assert plan(raw, 'raw')['backing_format'] == 'raw'
    # a qcow2 header where raw was given: refused
    with pytest.raises(ST.StorageError, match='set backing_format: qcow2'):
        plan(good, 'raw')
    # a qcow2 base with a backing file or an external data file of its own: refused, with
    # the fix (flatten it)
    for bad in (chained, datafile):
        with pytest.raises(ST.StorageError, match='qemu-img convert') as exc:
            plan(bad)
        assert 'backing file of its own' in str(exc.value) or 'external data file' in \
            str(exc.value)
