"""The one QEMU identity (qemu.conf, then the distribution default, then existing accounts),
on fake host trees: pure logic, no daemon."""
import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common import hostfiles
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_identity as QI


def tree(tmp_path, os_id='debian', users=('libvirt-qemu', 'qemu'), conf=None):
    root = tmp_path / 'host'
    (root / 'etc' / 'libvirt').mkdir(parents=True)
    (root / 'etc' / 'os-release').write_text('ID=%s\n' % os_id)
    lines = ['root:x:0:0::/root:/bin/sh']
    groups = ['root:x:0:']
    for i, u in enumerate(users):
        lines.append('%s:x:%d:%d::/:/bin/false' % (u, 100 + i, 100 + i))
        groups.append('%s:x:%d:' % (u, 100 + i))
    groups.append('kvm:x:200:%s' % ','.join(users))
    (root / 'etc' / 'passwd').write_text('\n'.join(lines) + '\n')
    (root / 'etc' / 'group').write_text('\n'.join(groups) + '\n')
    if conf is not None:
        (root / 'etc' / 'libvirt' / 'qemu.conf').write_text(conf)
    return str(root)


def test_distribution_default_wins_over_the_other_account(tmp_path):
    ident = QI.qemu_identity(tree(tmp_path, os_id='rhel'))
    assert (ident['user'], ident['group'], ident['uid']) == ('qemu', 'qemu', 101)
    assert ident['source'] == 'the libvirt default on RHEL/Fedora/SUSE'
    assert ident['gids'] == {101, 200}


def test_unknown_distribution_falls_back_to_libvirt_qemu_then_qemu(tmp_path):
    ident = QI.qemu_identity(tree(tmp_path, os_id='gentoo'))
    assert ident['user'] == 'libvirt-qemu' and ident['source'] == 'user libvirt-qemu exists on this host'
    ident = QI.qemu_identity(tree(tmp_path / 'b', os_id='gentoo', users=('qemu',)))
    assert ident['user'] == 'qemu'


def test_qemu_conf_wins_single_quotes_and_first_statement(tmp_path):
    root = tree(tmp_path, conf="user = 'qemu'  # local\nuser = \"libvirt-qemu\"\n"
                               "dynamic_ownership = 0\n")
    ident = QI.qemu_identity(root)
    assert (ident['user'], ident['source']) == ('qemu', '/etc/libvirt/qemu.conf')
    assert ident['group'] == 'libvirt-qemu'  # not set: the build default's group
    assert ident['dynamic_ownership'] is False


def test_group_only_in_qemu_conf_names_both_sources(tmp_path):
    ident = QI.qemu_identity(tree(tmp_path, conf='group = "kvm"\n'))
    assert (ident['user'], ident['group']) == ('libvirt-qemu', 'kvm')
    assert ident['source'] == '/etc/libvirt/qemu.conf (group), the libvirt default on Debian/Ubuntu'


def test_unparsable_qemu_conf_means_build_defaults(tmp_path):
    ident = QI.qemu_identity(tree(tmp_path, conf='user = "unterminated\n'))
    assert ident['user'] == 'libvirt-qemu' and ident['dynamic_ownership'] is True


def test_kvm_capability_and_preflight_name_the_same_user(tmp_path):
    """The two callers used to disagree; both now ask the same function."""
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._host import kvm_capability as kc
    root = tree(tmp_path, os_id='fedora', conf='#user = "root"\n')
    open(os.path.join(root, 'dev'), 'w').close()
    dev = kc.read_kvm_device(root, hostfiles.Accounts(root))
    assert dev['qemu_user'] == QI.qemu_identity(root)['user'] == 'qemu'
