# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk target names (vda, sdb, hdc, ...) and the bus of a CD-ROM: one allocator for the
domain builder, the drift merge and the install phase. Private to the collection.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

TARGET_PREFIX = {'virtio': 'vd', 'sata': 'sd', 'scsi': 'sd', 'usb': 'sd', 'ide': 'hd'}
# CD-ROMs go on SATA unless a bus is given: it exists on q35 and (through the AHCI controller
# libvirt adds) on i440fx, so a guest's CD-ROMs share one bus whichever machine libvirt picks.
CDROM_BUS = 'sata'


def target_name(prefix, index):
    """vda, vdb, ..., vdz, vdaa, ... like libvirt's virDiskNameToIndex in reverse."""
    letters = ''
    index += 1
    while index > 0:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord('a') + rem) + letters
    return prefix + letters


def free_target(bus, used):
    """The first target name of bus's prefix that is not in used."""
    prefix = TARGET_PREFIX[bus]
    i = 0
    while target_name(prefix, i) in used:
        i += 1
    return target_name(prefix, i)


def used_targets(devices):
    """Target names of the <disk> elements under a <devices> element."""
    return set(t.get('dev') for t in devices.findall('disk/target') if t.get('dev'))


def assign_targets(disks, used=()):
    """Target dev per disk (dict 'target'), skipping names already used; returns disks."""
    taken = set(used)
    for d in disks:
        if d.get('target'):
            taken.add(d['target'])
    for d in disks:
        if d.get('target'):
            continue
        d['target'] = free_target(d.get('bus') or d.get('bus_default'), taken)
        taken.add(d['target'])
    return disks
