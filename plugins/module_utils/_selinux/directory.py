# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""selinux_virt_dir's image directory: created with the asked mode, owner and group.
Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import grp
import os
import pwd


class Directory(object):
    """The image directory: created with mode/owner/group when asked (check mode aware).

    module: the AnsibleModule (its params mode/owner/group, check_mode and its
    set_*_if_different helpers, which apply owner, group and mode the way ansible.builtin.file
    does)."""

    def __init__(self, module, path, create):
        self.module = module
        self.path = path
        self.create = create

    @property
    def exists(self):
        return os.path.isdir(self.path)

    def describe(self, planned=False):
        """One line for the diff; planned=True: what check mode would make of it."""
        p = self.module.params
        if not self.exists:
            if not planned:
                return 'absent'
            st_mode, owner, group = None, None, None
        else:
            st = os.stat(self.path)
            st_mode = '%04o' % (st.st_mode & 0o7777)
            try:
                owner = pwd.getpwuid(st.st_uid).pw_name
                group = grp.getgrgid(st.st_gid).gr_name
            except KeyError:
                owner, group = st.st_uid, st.st_gid
        if planned:
            st_mode = p['mode'] if p['mode'] is not None else (st_mode or 'default')
            owner = p['owner'] if p['owner'] is not None else (owner or 'current user')
            group = p['group'] if p['group'] is not None else (group or 'default')
            verb = 'would be updated' if self.exists else 'would be created'
            return '%s (mode %s, owner %s, group %s)' % (verb, st_mode, owner, group)
        return 'present (mode %s, owner %s, group %s)' % (st_mode, owner, group)

    def ensure(self):
        m = self.module
        changed = False
        if not self.exists:
            if not self.create:
                return False
            if m.check_mode:
                return True
            os.makedirs(self.path)
            changed = True
        p = m.params
        if p['owner'] is not None:
            changed = m.set_owner_if_different(self.path, p['owner'], changed)
        if p['group'] is not None:
            changed = m.set_group_if_different(self.path, p['group'], changed)
        if p['mode'] is not None:
            changed = m.set_mode_if_different(self.path, p['mode'], changed)
        return changed
