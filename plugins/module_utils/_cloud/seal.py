# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sealing a clone from the inside at its first boot (issue 30, clone_from.seal): what the
clone's cloud-init NoCloud seed adds to its user-data. Private to the collection: no API
promise. Pure (no files, no tools).

It needs nothing on the hypervisor (no libguestfs) and cloud-init inside the image. The
clone's seed carries an instance-id the image has not seen (iid-<clone name> unless given),
so cloud-init treats the first boot as a NEW instance. That alone gives:

- cloud-init's instance state: a new /var/lib/cloud/instances/<iid> (the symlink
  /var/lib/cloud/instance points there); every per-instance module runs again (users and
  keys, hostname, /etc/hosts, write_files, network config rendered for the new MAC);
- new SSH host keys: cloud-init's ssh module deletes /etc/ssh/ssh_host_*key* and generates
  new ones (ssh_deletekeys, default true; ssh_genkeytypes: cloud-init 22.4's default made
  rsa, ecdsa, ed25519 and dsa keys; Debian 12's /etc/cloud/cloud.cfg sets neither). The
  seal writes ssh_deletekeys: true into the user-data so an image whose cloud.cfg turned it
  off is sealed too.

What cloud-init does not do, the seal adds as bootcmd entries run once per instance
(`cloud-init-per instance`): a new machine-id (/etc/machine-id removed and made again by
systemd-machine-id-setup; a regular /var/lib/dbus/machine-id removed and linked to it) and no
persistent MAC rules (/etc/udev/rules.d/70-persistent-net.rules removed).

The machine-id: bootcmd runs in cloud-init's init stage, after systemd has started with the
image's id. systemd-machine-id-setup writes the new id at once (in a KVM/QEMU guest systemd
takes the VM's SMBIOS UUID, i.e. the clone's libvirt UUID, as it would on a first boot with an
empty file); PID 1, journald and logind keep the old id in memory until the next boot, so the
journal of that first boot is filed under the template's id. Leaving /etc/machine-id empty
for the next boot instead would leave the running system without an id, and systemd treats
an empty file as a first boot (presets applied again, ConditionFirstBoot units run).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError

METHOD = 'cloud-init first boot'

# What the seal covers (docs, README and the module's result say the same).
OPERATIONS = (
    'cloud-init instance: a new instance-id, so per-instance modules run again',
    'ssh-hostkeys: /etc/ssh/ssh_host_*key* deleted and made again (cloud-init ssh module, '
    'ssh_deletekeys: true)',
    'machine-id: /etc/machine-id made again by systemd-machine-id-setup; a regular '
    '/var/lib/dbus/machine-id replaced by a link to it',
    'udev-persistent-net: /etc/udev/rules.d/70-persistent-net.rules removed',
)

MACHINE_ID_SCRIPT = (
    'command -v systemd-machine-id-setup >/dev/null || exit 0; '
    'rm -f /etc/machine-id; '
    'if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then '
    'rm -f /var/lib/dbus/machine-id; ln -s /etc/machine-id /var/lib/dbus/machine-id; fi; '
    'systemd-machine-id-setup')

BOOTCMD = (
    ['cloud-init-per', 'instance', 'kvmops_seal_machine_id', 'sh', '-c', MACHINE_ID_SCRIPT],
    ['cloud-init-per', 'instance', 'kvmops_seal_udev_net', 'rm', '-f',
     '/etc/udev/rules.d/70-persistent-net.rules'],
)

WINDOWS_OS_PREFIX = 'http://microsoft.com/win'


def user_data(cfg):
    """The cloud-config dict cfg with the seal's additions (a new dict): the seal's bootcmd
    entries before the user's, ssh_deletekeys true. Raises KvmopsError for user-data that
    contradicts the seal or that cannot carry it."""
    if cfg is None:
        raise KvmopsError("clone_from.seal needs cloud-config user-data (a dictionary or "
                          "#cloud-config text): the seal adds bootcmd entries to it. Give "
                          "cloud_init.user_data as cloud-config, or set clone_from.seal: false.")
    cfg = dict(cfg)
    if cfg.get('ssh_deletekeys') is False:
        raise KvmopsError("cloud_init.user_data sets ssh_deletekeys: false, and "
                          "clone_from.seal gives the clone new SSH host keys. Remove "
                          "ssh_deletekeys from user_data, or set clone_from.seal: false.")
    cfg['ssh_deletekeys'] = True
    own = cfg.get('bootcmd')
    if own is not None and not isinstance(own, list):
        raise KvmopsError("cloud_init.user_data.bootcmd must be a list to go with "
                          "clone_from.seal (the seal adds its own entries first).")
    cfg['bootcmd'] = [list(c) for c in BOOTCMD] + list(own or [])
    return cfg


def is_windows(os_id):
    """Whether a libosinfo id (the <libosinfo:os id=...> of a definition) is a Windows one."""
    return bool(os_id) and os_id.startswith(WINDOWS_OS_PREFIX)


def windows_refusal(source, os_id):
    return ("clone_from.seal: %s is Windows (%s): the first-boot seal works through cloud-init "
            "and Linux files. A Windows template is sealed inside the guest with sysprep "
            "(C:\\Windows\\System32\\Sysprep\\sysprep.exe /generalize /oobe /shutdown) before "
            "it is made a template; then clone it with seal: false." % (source, os_id))
