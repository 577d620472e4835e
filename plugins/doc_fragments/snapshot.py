# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """The options a snapshot takes on each guest: virt_snapshot's and virt_snapshots' (their
    argument spec: module_utils/_snapshot/argspec.py snapshot_options())."""

    DOCUMENTATION = r'''
options:
  description:
    description: Description of the snapshot; changed on an existing snapshot when it differs.
    type: str
  kind:
    description:
      - V(auto) - internal (inside the qcow2 images; of a running guest with its memory state)
        when every disk is qcow2, the guest does not boot UEFI from pflash and has no external
        snapshots; else external (a disk-only qcow2 overlay per disk).
      - V(internal) - fail when an internal snapshot is impossible.
      - V(external) - disk-only overlays even for qcow2 guests.
      - An existing snapshot of another kind than an explicit V(internal) or V(external) is a clash and fails.
    type: str
    choices: [auto, internal, external]
    default: auto
  quiesce:
    description:
      - For external snapshots of a running guest. V(auto) freezes the guest's file systems through
        the guest agent when it answers, and otherwise takes a crash-consistent snapshot with a
        warning; V(required) fails instead; V(skip) never asks the agent.
    type: str
    choices: [auto, required, skip]
    default: auto
  external_dir:
    description:
      - Directory for the overlays of an external snapshot (C(<disk name>.<snapshot>.qcow2));
        default beside each disk image. An existing file is never overwritten.
    type: path
  children:
    description:
      - With O(state=absent), delete the snapshot's descendants too. Without it only the snapshot
        itself goes and its children are kept (libvirt re-parents them).
    type: bool
    default: false
  revert_state:
    description:
      - With O(state=reverted), the power state after the revert. V(snapshot) - as in the snapshot
        (running for a snapshot with memory state, shut off for a disk-only one); V(running) or
        V(paused) - start the guest (paused) after the revert.
    type: str
    choices: [snapshot, running, paused]
    default: snapshot
'''
