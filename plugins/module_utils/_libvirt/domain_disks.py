# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A domain's disks as libvirt's domain XML describes them (target, device, source type and
path, driver format, read-only, shareable), and the guest-agent channel and NVRAM of a
domain. Pure functions on lxml elements. Private to the collection: no API promise.

The format is what the domain XML's <driver type=...> says: never probed from a file header.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

AGENT_CHANNEL = 'org.qemu.guest_agent.0'


def disks(root):
    """[{target, bus, device, type, source, path, pool, volume, network, format, readonly,
    shareable}] in XML order: the one reader of a domain's disks (backups, migration).
    source is the file, device, network name or volume; path the file, device or directory;
    pool/volume for pool volumes; network the protocol of a network disk."""
    out = []
    for disk in root.findall('devices/disk'):
        target = disk.find('target')
        source = disk.find('source')
        driver = disk.find('driver')
        src = path = None
        if source is not None:
            src = source.get('file') or source.get('dev') or source.get('name') or source.get('volume')
            path = source.get('file') or source.get('dev') or source.get('dir')
        kind = disk.get('type') or 'file'
        out.append({
            'target': target.get('dev') if target is not None else None,
            'bus': target.get('bus') if target is not None else None,
            'device': disk.get('device') or 'disk',
            'type': kind,
            'source': src,
            'path': path,
            'pool': source.get('pool') if source is not None else None,
            'volume': source.get('volume') if source is not None else None,
            'network': source.get('protocol') if source is not None and kind == 'network' else None,
            'format': driver.get('type') if driver is not None else None,
            'readonly': disk.find('readonly') is not None,
            'shareable': disk.find('shareable') is not None,
        })
    return out


def agent_channel(root):
    """None without a guest-agent channel, else its state ('connected', 'disconnected' or
    None when libvirt does not say: an inactive domain)."""
    for channel in root.findall('devices/channel'):
        target = channel.find('target')
        if target is not None and target.get('name') == AGENT_CHANNEL:
            return {'state': target.get('state')}
    return None


def nvram_path(root):
    """The path of the domain's UEFI variable store, or None."""
    node = root.find('os/nvram')
    if node is None:
        return None
    return (node.text or '').strip() or None
