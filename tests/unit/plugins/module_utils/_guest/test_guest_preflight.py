"""QEMU reachability preflight: real directories and permissions; SELinux labels are mocked
(this kernel cannot enable SELinux), and so is the QEMU identity where a test needs one."""
import os
import shutil
import tempfile

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import preflight as P
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_access as Q  # noqa: E402
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_identity as QI

DEBIAN_CONF = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'fixtures',
                           'qemu_conf', '9.0.0-debian12.conf')


@pytest.fixture
def tmp_path():
    """A world-traversable temporary directory (pytest's own base directory is 0700)."""
    import pathlib
    d = tempfile.mkdtemp(prefix='kvmops-preflight-')
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d)


def ident(uid=64055, gids=(64055,)):
    return {'user': 'libvirt-qemu', 'group': 'libvirt-qemu', 'uid': uid, 'gids': set(gids),
            'source': '/etc/libvirt/qemu.conf', 'dynamic_ownership': True}


def test_conf_values_active_and_commented_defaults():
    # Only active statements are settings (the strict parser); the commented default is not.
    text = '#user = "libvirt-qemu"\n#group = "libvirt-qemu"\n'
    assert QI.conf_values(text) == {}
    assert QI.conf_values(text + 'user = "qemu"\n')['user'] == 'qemu'
    assert QI.conf_values("user = 'qemu'\nuser = \"root\"\n")['user'] == 'qemu'  # first wins
    assert QI.conf_values('# the user key is below\n') == {}


@pytest.mark.skipif(not os.path.exists(DEBIAN_CONF), reason='qemu.conf fixture missing')
def test_debian_conf_gives_libvirt_qemu():
    with open(DEBIAN_CONF) as f:
        text = f.read()
    i = Q.qemu_identity(conf_text=text)
    assert i['user'] == 'libvirt-qemu'
    assert i['dynamic_ownership'] is True


def test_numeric_user_and_dynamic_ownership_off():
    i = Q.qemu_identity(conf_text='user = "+0"\ngroup = "+0"\ndynamic_ownership = 0\n')
    assert i['uid'] == 0 and i['dynamic_ownership'] is False


def test_0700_directory_blocks_qemu_with_path_obstacle_and_fix(tmp_path):
    private = tmp_path / 'private'
    private.mkdir(mode=0o700)
    os.chmod(str(tmp_path), 0o755)
    target = str(private / 'disk.img')
    with pytest.raises(Q.PreflightError) as exc:
        Q.check_paths([(target, 'disks[0], disk image', False)], ident(), selinux=False)
    msg = str(exc.value)
    assert target in msg and str(private) in msg and '0700' in msg
    assert 'libvirt-qemu' in msg and '/var/lib/libvirt/images' in msg and 'chmod o+x' in msg


def test_traversable_directory_passes(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    d = tmp_path / 'open'
    d.mkdir(mode=0o711)
    os.chmod(str(d), 0o711)
    Q.check_paths([(str(d / 'disk.img'), 'disk', False)], ident(), selinux=False)


def test_group_permission_counts(tmp_path):
    d = tmp_path / 'grp'
    d.mkdir()
    os.chmod(str(d), 0o710)
    st = os.stat(str(d))
    Q.check_dac(str(d / 'x'), 'disk', ident(gids=(st.st_gid,)), exists=False)
    with pytest.raises(Q.PreflightError):
        Q.check_dac(str(d / 'x'), 'disk', ident(gids=(999999,)), exists=False)


def test_qemu_as_root_is_not_checked(tmp_path):
    d = tmp_path / 'private'
    d.mkdir(mode=0o700)
    Q.check_dac(str(d / 'x'), 'disk', ident(uid=0), exists=False)


def test_selinux_label_checked_when_enabled(tmp_path, monkeypatch):
    os.chmod(str(tmp_path), 0o755)
    labels = {str(tmp_path): 'admin_home_t'}
    monkeypatch.setattr(Q, 'selinux_type', labels.get)
    with pytest.raises(Q.PreflightError) as exc:
        Q.check_paths([(str(tmp_path / 'win.iso'), 'ISO image', False)], ident(uid=0),
                      selinux=True)
    assert 'admin_home_t' in str(exc.value) and 'selinux_virt_dir' in str(exc.value)
    labels[str(tmp_path)] = 'virt_image_t'
    Q.check_paths([(str(tmp_path / 'win.iso'), 'ISO image', False)], ident(uid=0),
                  selinux=True)


def test_selinux_fix_never_labels_a_home_directory_for_libvirt():
    # Found on an enforcing guest (tests/integration/test_selinux_enforcing.py): the hint
    # used to say "semanage fcontext -a -t virt_image_t '/home/alice(/.*)?'", which relabels
    # the user's whole home (and SSH keys) as a disk image directory.
    msg = Q.selinux_fix('/home/alice/install.iso', 'install.cdrom ISO image')
    assert "'/home/alice(/.*)?'" not in msg and 'Do not label /home/alice itself' in msg
    assert '/var/lib/libvirt/boot' in msg and 'restorecon -v' in msg
    assert 'setype: virt_content_t' in msg
    assert "'/root(/.*)?'" not in Q.selinux_fix('/root/disk.qcow2', 'disks[0], disk image')


def test_selinux_fix_types_media_and_disks_and_names_the_rule():
    msg = Q.selinux_fix('/vm-images/iso/win.iso', 'disks[1], ISO image')
    assert "semanage fcontext -a -t virt_content_t '/vm-images/iso(/.*)?'" in msg
    msg = Q.selinux_fix('/vm-images/guest.qcow2', 'disks[0], disk image')
    assert "semanage fcontext -a -t virt_image_t '/vm-images(/.*)?'" in msg
    assert 'move it to /var/lib/libvirt/images' in msg
    msg = Q.selinux_fix('/vm-images/new.qcow2', 'disks[0], disk image', exists=False)
    assert 'create it under /var/lib/libvirt/images' in msg and 'mv keeps' not in msg
    assert 'virt_content_t' in Q.selinux_fix('/srv/boot/vmlinuz', 'kernel')


def test_paths_of_lists_kernel_disks_isos_and_backing_store():
    spec = {'kernel': '/b/vmlinuz', 'initrd': '/b/initrd', 'disks': [
        {'path': '/i/a.qcow2', 'device': 'disk', 'backing_store': '/i/base.qcow2'},
        {'path': '/i/x.iso', 'device': 'cdrom', 'backing_store': None},
        {'path': None, 'pool': 'p', 'volume': 'v', 'device': 'disk'}]}
    paths = [item[0] for item in P.paths_of(spec)]
    assert paths == ['/b/vmlinuz', '/b/initrd', '/i/a.qcow2', '/i/base.qcow2', '/i/x.iso']


# ---------------------------------------------------------------- media (the one list)

def test_media_of_lists_every_medium_a_new_guest_reads():
    params = {'kernel': '/b/vmlinuz', 'initrd': '/b/initrd.img', 'disks': [
        {'path': '/i/a.qcow2', 'device': 'disk', 'backing_store': '/i/base.qcow2'},
        {'path': '/b/tools.iso', 'device': 'cdrom'},
        {'pool': 'default', 'volume': 'v', 'device': 'disk'}],
        'install': {'location': 'http://127.0.0.1:1/tree/', 'cdrom': None,
                    'kickstart': '/b/ks.cfg'}}
    assert P.media_of(params) == [
        ('kernel', '/b/vmlinuz', 'file'), ('initrd', '/b/initrd.img', 'file'),
        ('disks[0].backing_store', '/i/base.qcow2', 'file'),
        ('disks[1].path', '/b/tools.iso', 'file'),
        ('install.location', 'http://127.0.0.1:1/tree/', 'location'),
        ('install.kickstart', '/b/ks.cfg', 'file')]
    assert P.media_of({'install': {'cdrom': '/b/w.iso'}, 'disks': None}) == [
        ('install.cdrom', '/b/w.iso', 'iso')]
    assert P.media_of({'name': 'plain', 'disks': [{'path': '/i/x.img', 'device': 'disk'}]}) == []


def test_local_problem_names_what_is_wrong_in_a_few_words(tmp_path):
    iso = tmp_path / 'good.iso'
    with open(str(iso), 'wb') as f:
        f.seek(16 * 2048 + 1)
        f.write(b'CD001')
    text = tmp_path / 'notes.txt'
    text.write_bytes(b'not an image\n' * 400)
    missing = str(tmp_path / 'gone.iso')
    assert P.local_problem(missing, 'iso') == 'no such file'
    assert P.local_problem(missing, 'location') == 'no such file or directory'
    assert P.local_problem(str(tmp_path), 'file') == 'a directory, not a file'
    assert P.local_problem(str(tmp_path), 'location') is None
    assert P.local_problem('file://' + str(tmp_path), 'location') is None
    assert P.local_problem(str(text), 'file') is None
    assert P.local_problem(str(text), 'iso') == 'not an ISO 9660 or UDF image'
    assert P.local_problem(str(text), 'location') == 'neither a directory nor an ISO 9660 image'
    assert P.local_problem(str(iso), 'iso') is None and P.local_problem(str(iso), 'location') is None


def test_url_schemes_are_the_install_media_code_s():
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media
    assert P.URL_SCHEMES == media.URL_SCHEMES
    assert P.is_url('HTTPS://127.0.0.1/t/') and not P.is_url('/srv/tree') \
        and not P.is_url('file:///srv/tree')


def test_media_problem_says_guest_option_source_and_fix():
    p = P.media_problem('vm2', 'install.cdrom', '/vm-images/iso/w.iso', 'no such file')
    assert p['guest'] == 'vm2' and p['problem'] == 'no such file'
    assert p['msg'].startswith('install.cdrom=/vm-images/iso/w.iso cannot be used (no such file): '
                               'copy it to the hypervisor')
    u = P.media_problem('vm1', 'install.location', 'https://127.0.0.1:9/t/', 'HTTP 404 Not Found')
    assert 'cannot be fetched (HTTP 404 Not Found)' in u['msg'] and 'hypervisor' in u['msg']


def test_a_home_directory_is_never_opened_for_qemu():
    """Issue 27 (point 8): an ISO in /root gets "move it", never "chmod o+x /root"."""
    for home in ('/root', '/home/alice', '/home'):
        hint = Q.traverse_hint(home, 'libvirt-qemu')
        assert 'chmod' not in hint and 'setfacl' not in hint, hint
        assert '/var/lib/libvirt/boot' in hint and 'do not open %s' % home in hint
    assert 'chmod o+x /srv/vm' in Q.traverse_hint('/srv/vm', 'libvirt-qemu')
