# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small base for the collection's managers (get current -> compute differences -> act
unless check_mode -> changed / diff / result, the community.docker pattern).
Private to the collection: no API promise; independent of AnsibleModule.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ManagerBase(object):
    """Bookkeeping every manager shares: changed, actions, warnings and the diff."""

    def __init__(self, check_mode=False, diff_mode=False, warn=None):
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.changed = False
        self.actions = []
        self.warnings = []
        self.diff = {'before': '', 'after': ''}
        self._warn = warn

    def act(self, what):
        """Record an action (done, or what would be done in check mode)."""
        self.changed = True
        self.actions.append(what)

    def warn(self, msg):
        if self._warn is not None:
            self._warn(msg)
        else:
            self.warnings.append(msg)

    def result(self, **fields):
        """The module result: changed, actions, warnings not sent through warn, diff."""
        out = dict(changed=self.changed, actions=list(self.actions))
        if self.warnings:
            out['warnings'] = list(self.warnings)
        if self.diff_mode:
            out['diff'] = self.diff
        out.update(fields)
        return out
