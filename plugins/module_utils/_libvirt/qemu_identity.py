# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one answer to "which user and group do QEMU processes run as on this host".

Used by kvm_capability_facts (/dev/kvm access) and by virt_install_domain's permission
preflight, so both name the same QEMU user. Private to the collection: no API promise.

The order, as libvirt itself decides:
1. ``user`` / ``group`` set in qemu.conf (read with the strict parser: the first statement
   of a key wins, single or double quotes);
2. else the distribution's build default (os-release: Debian/Ubuntu libvirt-qemu,
   RHEL/Fedora/SUSE qemu) when that account exists;
3. else the first of the accounts libvirt-qemu, qemu that exists;
4. else the distribution's default as named (unresolvable: reported as unknown), or None.
A group not set in qemu.conf is the default's group (libvirt's build-time group).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common import hostfiles
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as _qemu_conf

QEMU_CONF = '/etc/libvirt/qemu.conf'
QEMU_USER_DEFAULTS = (
    (('debian', 'ubuntu'), 'libvirt-qemu', 'libvirt-qemu', 'Debian/Ubuntu'),
    (('rhel', 'fedora', 'centos', 'rocky', 'almalinux', 'ol', 'suse', 'opensuse', 'sles'),
     'qemu', 'qemu', 'RHEL/Fedora/SUSE'),
)
FALLBACK_ACCOUNTS = ('libvirt-qemu', 'qemu')


def conf_values(text):
    """Effective qemu.conf values; {} when the text is missing or libvirt could not parse it
    (libvirtd would not start with it, so only the build defaults are known)."""
    if not text:
        return {}
    try:
        return _qemu_conf.values(text)
    except _qemu_conf.ConfSyntaxError:
        return {}


def build_default(root, accounts):
    """(user, group, label) libvirt was built with on this host, as far as it can be told."""
    family = hostfiles.os_ids(root)
    user = group = label = None
    for ids, u, g, name in QEMU_USER_DEFAULTS:
        if any(i in family for i in ids):
            user, group, label = u, g, 'the libvirt default on %s' % name
            break
    if user is None or user not in accounts.users:
        for u in FALLBACK_ACCOUNTS:
            if u in accounts.users:
                return u, u, 'user %s exists on this host' % u
    return user, group, label


def qemu_identity(root='/', accounts=None, conf_text=None, conf_path=QEMU_CONF):
    """{'user', 'group', 'source', 'uid', 'gids', 'dynamic_ownership'} of QEMU processes.

    uid is None (and gids empty) when the user cannot be resolved on this host.
    """
    if accounts is None:
        accounts = hostfiles.Accounts(root)
    if conf_text is None:
        conf_text = hostfiles.read(root, conf_path)
    values = conf_values(conf_text)
    user, group = values.get('user'), values.get('group')
    source = conf_path if user is not None or group is not None else None
    if user is None or group is None:
        default_user, default_group, label = build_default(root, accounts)
        if user is None:
            user = default_user
            if default_user is not None:
                source = (source + ' (group), ' if source else '') + label
        if group is None:
            group = default_group
    ident = {'user': None if user is None else str(user),
             'group': None if group is None else str(group),
             'source': source, 'uid': None, 'gids': set(),
             'dynamic_ownership': values.get('dynamic_ownership', 1) != 0}
    resolved = accounts.resolve_user(ident['user']) if ident['user'] is not None else None
    if resolved is None:
        return ident
    name, uid, primary_gid = resolved
    ident['user'], ident['uid'] = name, uid
    # libvirt runs QEMU with setgid(group) plus the user's primary and supplementary groups.
    gids = accounts.member_gids(name)
    if primary_gid is not None:
        gids.add(primary_gid)
    gid = accounts.resolve_group(ident['group'])
    if gid is not None:
        gids.add(gid)
    ident['gids'] = gids
    return ident
