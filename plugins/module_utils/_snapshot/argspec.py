# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options a snapshot takes on each guest, shared by virt_snapshot (one guest) and
virt_snapshots (a group); documented once in the doc fragment kvmops.hypervisor.snapshot.

Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import plan


def snapshot_options():
    """description, kind, quiesce, external_dir, children, revert_state."""
    return dict(
        description=dict(type='str'),
        kind=dict(type='str', choices=list(plan.KINDS), default='auto'),
        quiesce=dict(type='str', choices=list(plan.QUIESCE), default='auto'),
        external_dir=dict(type='path'),
        children=dict(type='bool', default=False),
        revert_state=dict(type='str', choices=list(plan.REVERT_STATES), default='snapshot'),
    )
