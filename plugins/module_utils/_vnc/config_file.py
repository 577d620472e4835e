# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vnc_listen's write of qemu.conf: atomic, a symlinked qemu.conf stays a symlink, the backup,
and a file that holds a password is not readable by others. Private to the collection: no API
promise. module: the AnsibleModule (warn, backup_local, atomic_move).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat
import tempfile

from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.files import unlink_quietly
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as _qemu_conf
from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc import listen as _vnc


def tighten_mode(module, path, text):
    """A qemu.conf that holds a password must not be readable by others (0600/0640): tighten
    it before the backup and the move (atomic_move keeps the mode of the file it replaces)."""
    try:
        holds_secret = any(k in _qemu_conf.values(text) for k in _vnc.SECRET_KEYS)
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except (_qemu_conf.ConfSyntaxError, OSError):
        return
    if holds_secret and mode & 0o137:
        os.chmod(path, mode & 0o640)
        module.warn('%s holds a VNC/SPICE password: its mode was tightened from %04o to %04o.'
                    % (path, mode, mode & 0o640))


def write_config(module, path, text, backup):
    """Write qemu.conf atomically (a symlinked qemu.conf stays a symlink); the backup file.

    The new text goes to a temporary file next to qemu.conf first: a full file system fails
    there, before any backup, and the rename cannot fail for lack of space."""
    path = os.path.realpath(path)
    tighten_mode(module, path, text)
    fd, tmp = tempfile.mkstemp(prefix='.qemu.conf.', dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(text.encode('utf-8', 'surrogateescape'))
            f.flush()
            os.fsync(f.fileno())
    except (IOError, OSError) as exc:
        unlink_quietly(tmp)
        raise KvmopsError('cannot write the new %s: %s. Nothing was changed (the original is '
                          'intact); free space on its file system and run again.'
                          % (path, to_native(exc)))
    backup_file = None
    try:
        if backup:
            backup_file = module.backup_local(path)
        module.atomic_move(tmp, to_bytes(path), unsafe_writes=False)
    except BaseException:  # fail_json exits: no temporary copy stays behind
        unlink_quietly(tmp)
        raise
    return backup_file
