"""Helpers for integration tests that talk to the real libvirtd."""
import os
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import libvirt


def wait_for_text(path, text, timeout=60.0, interval=0.2):
    """Wait until text appears in the file at path (a guest's serial log); return the file."""
    deadline = time.monotonic() + timeout
    content = ''
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, 'r', errors='replace') as f:
                content = f.read()
            if text in content:
                return content
        time.sleep(interval)
    raise AssertionError('%r did not appear in %s within %ss; last 2000 chars:\n%s'
                         % (text, path, timeout, content[-2000:]))


def wait_for_state(dom, state, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dom.state()[0] == state:
            return
        time.sleep(0.2)
    raise AssertionError('domain %s did not reach state %s within %ss (now %s)'
                         % (dom.name(), state, timeout, dom.state()))


def lookup_domain(conn, name):
    """The domain called name, or None."""
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        return None


def remove_domain(dom):
    """Destroy and undefine a domain, whatever it carries (nvram, snapshots, checkpoints)."""
    try:
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError:
        pass
    if not dom.isPersistent():
        return
    flags = (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
             | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
             | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
    try:
        dom.undefineFlags(flags)
    except libvirt.libvirtError:
        dom.undefine()


def _inside(path, directory):
    return bool(directory) and bool(path) and (
        path == directory or path.startswith(directory.rstrip('/') + '/'))


def _pool_path(pool):
    try:
        return ET.fromstring(pool.XMLDesc(0)).findtext('target/path')
    except (libvirt.libvirtError, ET.ParseError):
        return None


def remove_everything_named(conn, prefix, under=None, parallel=False):
    """Remove every domain, volume, pool and network whose name starts with prefix; with
    under (a directory), also every pool whose target path and every volume whose path is
    inside it. parallel: destroy the domains at once (destroy waits for QEMU to exit)."""
    doms = [d for d in conn.listAllDomains() if d.name().startswith(prefix)]
    if parallel and len(doms) > 1:
        with ThreadPoolExecutor(max_workers=len(doms)) as ex:
            list(ex.map(remove_domain, doms))
    else:
        for dom in doms:
            remove_domain(dom)
    for pool in conn.listAllStoragePools():
        mine = pool.name().startswith(prefix) or _inside(_pool_path(pool), under)
        try:
            if pool.isActive():
                pool.refresh(0)
                for vol in pool.listAllVolumes():
                    if vol.name().startswith(prefix) or _inside(vol.path(), under):
                        vol.delete(0)
        except libvirt.libvirtError:
            pass
        if mine:
            try:
                if pool.isActive():
                    pool.destroy()
                pool.undefine()
            except libvirt.libvirtError:
                pass
    for net in conn.listAllNetworks():
        if net.name().startswith(prefix):
            try:
                if net.isActive():
                    net.destroy()
                net.undefine()
            except libvirt.libvirtError:
                pass


def leftovers(conn, prefix, under=None):
    """What remove_everything_named(conn, prefix, under) should have removed and did not:
    ['domain NAME', 'pool NAME', 'volume PATH', 'network NAME', ...]."""
    found = ['domain ' + d.name() for d in conn.listAllDomains() if d.name().startswith(prefix)]
    for pool in conn.listAllStoragePools():
        if pool.name().startswith(prefix) or _inside(_pool_path(pool), under):
            found.append('pool ' + pool.name())
        try:
            if pool.isActive():
                pool.refresh(0)
                found += ['volume ' + v.path() for v in pool.listAllVolumes()
                          if v.name().startswith(prefix) or _inside(v.path(), under)]
        except libvirt.libvirtError:
            pass
    found += ['network ' + n.name() for n in conn.listAllNetworks()
              if n.name().startswith(prefix)]
    return found


TINY_GUEST_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='file'><source path='{log}'/><target port='0'/></serial>
    <console type='file'><source path='{log}'/><target type='serial' port='0'/></console>
    {devices}
  </devices>
</domain>
"""


def tiny_guest_xml(name, tiny, log, memory=256, cmdline='console=ttyS0', devices=''):
    """Domain XML of the tiny guest (TCG, direct kernel boot, console logged to log), written
    by hand so tests can set up guests without the collection's own XML builder."""
    return TINY_GUEST_XML.format(name=name, memory=memory, kernel=tiny['kernel'],
                                 initrd=tiny['initrd'], cmdline=cmdline, log=log,
                                 devices=devices)
