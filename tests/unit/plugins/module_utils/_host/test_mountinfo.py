"""Unit tests of the NFS/CIFS detection from /proc/self/mountinfo (pure parsing; the NFS and
CIFS lines are in the kernel's format, as a host with such mounts prints them - this machine has
none)."""
import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._host import mountinfo as mi

# The first lines are from this test machine; the NFS/CIFS ones follow proc(5)'s format.
MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
40 27 0:40 / /mnt/nfs rw,relatime shared:20 - nfs4 filer.example.com:/export/vm rw,vers=4.2,rsize=1048576,sec=sys
41 27 0:41 / /mnt/nfs2 rw,relatime shared:21 - ext4 /dev/sdb1 rw
42 40 0:42 / /mnt/nfs/local rw,relatime - xfs /dev/sdc1 rw
43 27 0:43 / /srv/smb\\040share rw,relatime - cifs //nas/vm\\040images rw,vers=3.1.1,cache=strict
44 27 0:44 / /srv/old-nfs rw,relatime - nfs filer:/old rw,vers=3
45 27 0:45 / /srv/stack rw,relatime - ext4 /dev/sdd1 rw
46 27 0:46 / /srv/stack rw,relatime - nfs4 filer:/stacked rw
47 27 0:47 / /srv/smb3 rw,relatime - smb3 //nas/x rw
garbage line without separator
"""


def mounts():
    return mi.parse_mountinfo(MOUNTINFO)


def test_parse_fields_and_skip_garbage():
    ms = mounts()
    assert len(ms) == 11
    nfs = ms[3]
    assert nfs['mount_point'] == '/mnt/nfs'
    assert nfs['fstype'] == 'nfs4'
    assert nfs['source'] == 'filer.example.com:/export/vm'
    assert nfs['super_options'].startswith('rw,vers=4.2')
    # optional fields (shared:1) do not shift fstype/source
    assert ms[2]['fstype'] == 'ext4' and ms[2]['source'] == '/dev/sda1'


def test_octal_escapes_are_decoded():
    cifs = mounts()[6]
    assert cifs['mount_point'] == '/srv/smb share'
    assert cifs['source'] == '//nas/vm images'
    assert mi.unescape('a\\011b\\012c\\134d') == 'a\tb\nc\\d'


def test_longest_prefix_wins():
    assert mi.find_mount('/mnt/nfs/vm-images', mounts())['fstype'] == 'nfs4'
    assert mi.find_mount('/mnt/nfs', mounts())['fstype'] == 'nfs4'
    # a local file system mounted below the NFS mount
    assert mi.find_mount('/mnt/nfs/local/img', mounts())['fstype'] == 'xfs'
    assert mi.find_mount('/vm-images', mounts())['mount_point'] == '/'


def test_prefix_is_component_wise_not_string_wise():
    # /mnt/nfs2 is its own ext4 mount, not under /mnt/nfs
    assert mi.find_mount('/mnt/nfs2/x', mounts())['fstype'] == 'ext4'
    # /mnt/nfsx is not a mount at all: it lives on /
    assert mi.find_mount('/mnt/nfsx', mounts())['mount_point'] == '/'


def test_escaped_mount_point_matches_real_path():
    m = mi.find_mount('/srv/smb share/vm', mounts())
    assert m['fstype'] == 'cifs'
    assert mi.network_fs_kind(m['fstype']) == 'cifs'


def test_stacked_mounts_topmost_wins():
    assert mi.find_mount('/srv/stack/a', mounts())['source'] == 'filer:/stacked'


def test_network_kinds():
    assert mi.network_fs_kind('nfs') == 'nfs'
    assert mi.network_fs_kind('nfs4') == 'nfs'
    assert mi.network_fs_kind('cifs') == 'cifs'
    assert mi.network_fs_kind('smb3') == 'cifs'
    assert mi.network_fs_kind('ext4') is None
    assert mi.network_fs_kind('fuse.sshfs') is None
    assert mi.BOOLEAN_FOR_FS == {'nfs': 'virt_use_nfs', 'cifs': 'virt_use_samba'}


def test_no_match_in_empty_table():
    assert mi.find_mount('/x', []) is None


def test_mount_for_path_resolves_symlinks_and_missing_tails(tmp_path):
    real = tmp_path / 'real'
    real.mkdir()
    link = tmp_path / 'link'
    link.symlink_to(real)
    table = tmp_path / 'mountinfo'
    table.write_text('1 0 0:1 / / rw - ext4 /dev/root rw\n'
                     '2 1 0:2 / %s rw - nfs4 filer:/e rw\n' % real)
    m, resolved = mi.mount_for_path(str(link / 'not' / 'yet'), mountinfo_path=str(table))
    assert resolved == os.path.join(str(real), 'not', 'yet')
    assert m['fstype'] == 'nfs4'


def test_mount_for_path_without_mountinfo(tmp_path):
    m, resolved = mi.mount_for_path(str(tmp_path), mountinfo_path=str(tmp_path / 'missing'))
    assert m is None and resolved == os.path.realpath(str(tmp_path))


def test_real_mountinfo_of_this_machine_has_a_root_mount():
    m, resolved = mi.mount_for_path('/var/tmp')
    assert m is not None and resolved.startswith('/')
