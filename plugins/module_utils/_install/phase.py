# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The install phase of a guest, the way virt-install runs it.

Private to the collection: no API promise.

The domain's persistent definition is always the FINAL one.  The installer runs once from a
transient *install configuration* derived from it (direct kernel boot with the installer's
kernel, initrd and command line, or a CD-ROM / the network first in the boot order) with
``on_reboot=destroy``: ``virDomainCreateXML`` with the same name and UUID starts that
configuration while the persistent definition stays final.  When the installer reboots or
powers off, the domain stops; the next start uses the final configuration.

Where an install stands is remembered in the persistent definition itself, as a metadata
element in the kvmops namespace (see RECORD_NS)::

    <metadata>
      <kvmops:install xmlns:kvmops="urn:kvmops:hypervisor:install:1" state="completed"
                      source="location" started="2026-01-01T10:00:00Z"
                      completed="2026-01-01T10:12:00Z"/>
    </metadata>

``state`` is ``pending`` (defined, installer not started yet), ``started`` or ``completed``.
The install configuration carries the same element with ``phase="install"`` so a running
installer can be told from a running final configuration.  A domain with ``completed`` is
never installed again.  Nothing secret is ever stored there.

Two runs on one guest (issue 26): the step from ``pending`` to a started installer, and the
step from a stopped installer to ``completed``, run under a per-guest lock (an flock on
/run/kvmops/install/<uuid>.lock) and re-read the record under it (compare-and-set), so a
second run never starts a second installer, never puts a started install back to ``pending``
and never takes another run's installer as finished.

Finished means the installer powered the machine off or rebooted it (libvirt's shutoff
reason ``shutdown``; a reboot ends the transient install configuration with
``on_reboot=destroy``, which libvirt also reports as ``shutdown``).  A domain that stopped
otherwise (destroyed, crashed, failed; or ``unknown`` after libvirtd or the host restarted)
is refused: the disk may be half-installed, the final configuration is not started and the
record stays ``started`` (InstallPhaseError).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import time

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import disk_targets
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.constants import (
    VIR_DOMAIN_AFFECT_CONFIG, VIR_DOMAIN_METADATA_ELEMENT, VIR_DOMAIN_SHUTOFF,
    VIR_DOMAIN_XML_INACTIVE)
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.xml import etree

RECORD_NS = 'urn:kvmops:hypervisor:install:1'
RECORD_PREFIX = 'kvmops'
RECORD_TAG = 'install'
RECORD_STATES = ('pending', 'started', 'completed')
SOURCES = ('location', 'cdrom', 'pxe')
# install_phase values reported by the module.
PHASE_NONE = 'none'            # no install phase (import, or a domain without a record)
PHASE_PENDING = 'pending'      # defined; the installer starts with state=running
PHASE_STARTED = 'started'      # the installer is running
PHASE_COMPLETED = 'completed'  # the installer ended; the final configuration is in place
PHASE_TIMED_OUT = 'timed_out'  # wait expired while the installer was still running


class InstallPhaseError(KvmopsError):
    """The message says what failed and how to fix it. Caught by _guest/features/install,
    which re-wraps it as DomainError."""


# libvirt's virDomainShutoffReason; only SHUTDOWN proves that the installer ended it.
SHUTOFF_SHUTDOWN = 1
SHUTOFF_REASONS = {0: 'unknown', 1: 'shutdown', 2: 'destroyed', 3: 'crashed', 4: 'migrated',
                   5: 'saved', 6: 'failed', 7: 'from snapshot', 8: 'daemon'}
SHUTOFF_CAUSES = {
    0: 'libvirt no longer knows why it stopped: libvirtd or the host restarted since it ran '
       '(a host that rebooted mid-install looks the same)',
    2: 'it was destroyed (virsh destroy, or its QEMU process was killed by a signal)',
    3: 'its QEMU process crashed',
    6: 'QEMU failed to run it',
}
LOCK_DIR = '/run/kvmops/install'
LOCK_WAIT = 300


def utc_now():
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


# --------------------------------------------------------------------------------------------
# The install record
# --------------------------------------------------------------------------------------------

def record_element_xml(record):
    """The <install/> element (no namespace prefix; libvirt's setMetadata adds it)."""
    el = etree.Element(RECORD_TAG)
    for key in sorted(record):
        if record[key] is not None:
            el.set(key, str(record[key]))
    return etree.tostring(el).decode('utf-8')


def read_record(domain_xml):
    """The install record of a domain XML (inactive or live) as a dict, or None."""
    root = _parse(domain_xml)
    el = root.find('metadata/{%s}%s' % (RECORD_NS, RECORD_TAG))
    if el is None:
        return None
    rec = dict(el.attrib)
    if rec.get('state') not in RECORD_STATES:
        return None
    return rec


def write_record(dom, record):
    """Store the record in the persistent definition (works while the domain runs)."""
    dom.setMetadata(VIR_DOMAIN_METADATA_ELEMENT, record_element_xml(record), RECORD_PREFIX,
                    RECORD_NS, VIR_DOMAIN_AFFECT_CONFIG)


def new_record(source, state='pending'):
    if source not in SOURCES:
        raise ValueError(source)
    return {'state': state, 'source': source}


# --------------------------------------------------------------------------------------------
# The install configuration
# --------------------------------------------------------------------------------------------

def _parse(xml):
    return lxml_util.parse(xml)


def _child(parent, tag):
    el = parent.find(tag)
    if el is None:
        el = etree.SubElement(parent, tag)
    return el


def _set_metadata(root, record):
    meta = root.find('metadata')
    if meta is None:
        meta = etree.Element('metadata')
        # After name/uuid/title/description (libvirt does not care about order, readers do).
        anchor = None
        for tag in ('description', 'title', 'uuid', 'name'):
            anchor = root.find(tag)
            if anchor is not None:
                break
        if anchor is not None:
            anchor.addnext(meta)
        else:
            root.insert(0, meta)
    for old in meta.findall('{%s}%s' % (RECORD_NS, RECORD_TAG)):
        meta.remove(old)
    el = etree.SubElement(meta, '{%s}%s' % (RECORD_NS, RECORD_TAG),
                          nsmap={RECORD_PREFIX: RECORD_NS})
    for key in sorted(record):
        if record[key] is not None:
            el.set(key, str(record[key]))


def add_record(domain_xml, record):
    """domain_xml with the install record in its <metadata> (replacing an older one)."""
    root = _parse(domain_xml)
    _set_metadata(root, record)
    return etree.tostring(root, pretty_print=True).decode('utf-8')


def _find_cdrom_with(devices, iso):
    for disk in devices.findall('disk'):
        if disk.get('device') != 'cdrom':
            continue
        src = disk.find('source')
        if src is not None and src.get('file') == iso:
            return disk
    return None


def _add_cdrom(devices, iso):
    disk = _find_cdrom_with(devices, iso)
    if disk is not None:
        return disk
    bus = disk_targets.CDROM_BUS
    disk = etree.Element('disk', type='file', device='cdrom')
    etree.SubElement(disk, 'driver', name='qemu', type='raw')
    etree.SubElement(disk, 'source', file=iso)
    etree.SubElement(disk, 'target',
                     dev=disk_targets.free_target(bus, disk_targets.used_targets(devices)), bus=bus)
    etree.SubElement(disk, 'readonly')
    # Before the other disks' siblings of the same kind keeps sdX/hdX naming tidy; libvirt
    # assigns addresses itself.
    disks = devices.findall('disk')
    if disks:
        disks[-1].addnext(disk)
    else:
        devices.insert(0, disk)
    return disk


def _boot_first(root, devices, first_dev, first_el):
    """Make first_dev ('cdrom' | 'network') the first boot device, then the disks."""
    os_el = root.find('os')
    per_device = [el for el in devices.iter('boot') if el.getparent() is not None
                  and el.getparent().tag in ('disk', 'interface', 'hostdev', 'redirdev')]
    if per_device:
        for el in per_device:
            if el.getparent() is first_el:
                el.getparent().remove(el)
        for el in per_device:
            if el.getparent() is not None and el.get('order', '').isdigit():
                el.set('order', str(int(el.get('order')) + 1))
        boot = first_el.find('boot')
        if boot is None:
            boot = etree.SubElement(first_el, 'boot')
        boot.set('order', '1')
        return
    for el in os_el.findall('boot'):
        os_el.remove(el)
    anchor = os_el.find('type')
    for dev in reversed([first_dev, 'hd']):
        b = etree.Element('boot', dev=dev)
        if anchor is not None:
            anchor.addnext(b)
        else:
            os_el.insert(0, b)


def build_install_xml(final_xml, plan, record=None):
    """The transient install configuration derived from the final domain XML.

    plan: {'boot': 'kernel', 'kernel': path, 'initrd': path, 'cmdline': str,
           'attach_iso': optional ISO path (an install tree inside an ISO)}
       or {'boot': 'cdrom', 'iso': path}
       or {'boot': 'network'}
    record: the install record to carry (phase="install" is added).
    """
    root = _parse(final_xml)
    if root.find('uuid') is None:
        raise InstallPhaseError("The final domain XML has no <uuid>; define it first.")
    os_el = root.find('os')
    if os_el is None:
        raise InstallPhaseError("The final domain XML has no <os> element.")
    devices = _child(root, 'devices')
    boot = plan.get('boot')
    if boot == 'kernel':
        for tag in ('kernel', 'initrd', 'cmdline'):
            for el in os_el.findall(tag):
                os_el.remove(el)
        anchor = os_el.find('type')
        new = [('kernel', plan['kernel']), ('initrd', plan['initrd'])]
        if plan.get('cmdline'):
            new.append(('cmdline', plan['cmdline']))
        for tag, text in reversed(new):
            el = etree.Element(tag)
            el.text = text
            if anchor is not None:
                anchor.addnext(el)
            else:
                os_el.insert(0, el)
        if plan.get('attach_iso'):
            _add_cdrom(devices, plan['attach_iso'])
    elif boot == 'cdrom':
        disk = _add_cdrom(devices, plan['iso'])
        _boot_first(root, devices, 'cdrom', disk)
    elif boot == 'network':
        iface = devices.find('interface')
        if iface is None:
            raise InstallPhaseError("install.pxe needs a network interface to boot from; add "
                                    "one with the networks option.")
        _boot_first(root, devices, 'network', iface)
    else:
        raise ValueError('unknown boot %r' % (boot,))
    on_reboot = root.find('on_reboot')
    if on_reboot is None:
        on_reboot = etree.SubElement(root, 'on_reboot')
    on_reboot.text = 'destroy'
    rec = dict(record or {})
    rec['phase'] = 'install'
    _set_metadata(root, rec)
    return etree.tostring(root, pretty_print=True).decode('utf-8')


def install_cmdline(extra_args, layout=None, inject_name=None):
    """Kernel command line for the installer: extra_args, plus the argument that points the
    installer at an injected kickstart/preseed/AutoYaST file unless extra_args names one."""
    args = (extra_args or '').strip()
    if inject_name:
        words = args.split()
        named = any(w.startswith(p) for w in words for p in (
            'ks=', 'inst.ks=', 'preseed/file=', 'file=', 'preseed/url=', 'url=', 'autoyast=',
            'inst.auto='))
        if not named:
            if layout in ('debian', 'ubuntu'):
                # d-i reads /preseed.cfg from the initrd by itself.
                extra = None if inject_name == 'preseed.cfg' else 'preseed/file=/%s' % inject_name
            elif layout == 'suse':
                extra = 'autoyast=file:///%s' % inject_name
            else:
                extra = 'inst.ks=file:/%s' % inject_name
            if extra:
                args = (args + ' ' + extra).strip()
    return args


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------

def is_shut_off(dom):
    return dom.state()[0] == VIR_DOMAIN_SHUTOFF


def check_installer_finished(dom):
    """Raise InstallPhaseError unless the shut-off domain's installer ended it (destroyed,
    crashed, the host or libvirtd restarted: the final configuration is not started)."""
    state = dom.state()
    reason = state[1] if len(state) > 1 else 0
    if reason == SHUTOFF_SHUTDOWN:
        return
    name = dom.name()
    raise InstallPhaseError(
        "The installer of %s did not finish: its domain stopped with libvirt's shutoff reason "
        "'%s' (%s), not by the installer powering the machine off or rebooting it. Its disk "
        "may be half-installed, so the final configuration was not started and the install "
        "record stays 'started'. Look at the installer's output (the guest's serial log, or "
        "virsh console %s while it runs) for the cause. To install again, remove the guest "
        "(state: absent, remove_storage: true) and run the task again; if you know the "
        "install did finish, start the guest once yourself (virsh start %s): a later run "
        "takes a running final configuration as the end of the install phase."
        % (name, SHUTOFF_REASONS.get(reason, str(reason)),
           SHUTOFF_CAUSES.get(reason, 'not an end the installer chose'), name, name))


class install_lock(object):
    """The per-guest install lock: an exclusive flock on LOCK_DIR/<uuid>.lock (one host runs
    the modules of one libvirtd; the compare-and-set on the record covers the rest). Waits up
    to LOCK_WAIT seconds; without a writable LOCK_DIR it does nothing (the re-read record
    still guards)."""

    def __init__(self, dom, lock_dir=None, wait=LOCK_WAIT, monotonic=time.monotonic,
                 sleep=time.sleep):
        self.path = None
        self.fd = None
        self.wait = wait
        self.monotonic = monotonic
        self.sleep = sleep
        lock_dir = lock_dir or LOCK_DIR
        try:
            uuid = dom.UUIDString()
        except Exception:  # noqa: BLE001 - a fake or vanished domain: no lock
            return
        self.path = os.path.join(lock_dir, '%s.lock' % uuid)
        self.lock_dir = lock_dir

    def __enter__(self):
        if self.path is None:
            return self
        import fcntl
        try:
            os.makedirs(self.lock_dir, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return self
        deadline = self.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    return self
                if self.monotonic() >= deadline:
                    os.close(fd)
                    raise InstallPhaseError(
                        "Another run has held the install lock of this guest (%s) for %ss; "
                        "wait for it to end, then run again." % (self.path, self.wait))
                self.sleep(0.1)
        self.fd = fd
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None
        return False


def current_record(dom):
    """The install record of the persistent definition, read now."""
    return read_record(dom.XMLDesc(VIR_DOMAIN_XML_INACTIVE))


def live_is_installer(dom):
    """True if the running configuration is an install configuration (phase="install")."""
    try:
        rec = read_record(dom.XMLDesc(0))
    except Exception:  # noqa: BLE001 - a domain that vanished is not an installer
        return False
    return bool(rec) and rec.get('phase') == 'install'


def wait_for_shutoff(dom, wait, sleep=time.sleep, monotonic=time.monotonic, interval=0.5):
    """Wait until dom is shut off. wait: 0 = don't wait, -1 = no limit, N seconds.
    True when it is shut off, False when the wait expired first."""
    if is_shut_off(dom):
        return True
    if wait == 0:
        return False
    deadline = None if wait < 0 else monotonic() + wait
    while True:
        if deadline is not None:
            left = deadline - monotonic()
            if left <= 0:
                return is_shut_off(dom)
            sleep(min(interval, left))
        else:
            sleep(interval)
        if is_shut_off(dom):
            return True


def run(conn, dom, record, want_running, wait, plan_factory, final_xml, check_mode=False,
        sleep=time.sleep, monotonic=time.monotonic, on_completed=None, lock=install_lock):
    """Drive the install phase of a defined domain; return a result dict.

    record: the domain's install record (read_record of its inactive XML), or None.
    want_running: the module's state is running (the installer may start, the final
      configuration is started after it).
    wait: 0 = return once the installer started, -1 = no limit, N = seconds.
    plan_factory(check_mode): the install plan (see build_install_xml); called only when an
      installer really has to start, so media are fetched only then.
    final_xml: the domain's persistent (inactive) XML.
    on_completed(record): called once when the install phase is seen to have ended (clean-up
      such as removing an injected initrd).
    lock(dom): the per-guest install lock (a context manager; install_lock).

    Returns {'install_phase', 'changed', 'started_installer', 'started_final', 'plan'}.
    """
    out = {'install_phase': PHASE_NONE, 'changed': False, 'started_installer': False,
           'started_final': False, 'plan': None}
    if record is None:
        return out
    state = record.get('state')
    if state == 'completed':
        out['install_phase'] = PHASE_COMPLETED
        return out

    if state == 'pending':
        if not want_running:
            out['install_phase'] = PHASE_PENDING
            return out
        plan = plan_factory(check_mode)
        out['plan'] = plan
        out['changed'] = True
        out['install_phase'] = PHASE_STARTED
        if check_mode:
            return out
        with lock(dom):
            # compare-and-set: another run may have started (or ended) the install since
            # this run read the record
            now = current_record(dom)
            if now is None or now.get('state') != 'pending':
                if now is None:
                    raise InstallPhaseError(
                        "The install record of %s vanished while this run planned its "
                        "install; nothing was started. Run again." % dom.name())
                now.pop('phase', None)
                record = now
                out = None
            else:
                if not is_shut_off(dom):
                    raise InstallPhaseError(
                        "Domain %s is running although its install has not started (kvmops "
                        "install record: pending); stop it or remove the record before "
                        "installing." % dom.name())
                started = dict(now, state='started', started=utc_now())
                started.update(dict((k, v) for k, v in record.items() if k not in now))
                started.pop('completed', None)
                install_xml = build_install_xml(final_xml, plan, started)
                write_record(dom, started)
                try:
                    conn.createXML(install_xml, 0)
                except Exception as exc:
                    if is_shut_off(dom):
                        # back to pending: a fixed re-run tries again (never while an
                        # installer runs: that would install it a second time later)
                        write_record(dom, dict(now))
                    raise InstallPhaseError.rewrap(exc, "Starting the installer of %s failed: "
                                                   "%s" % (dom.name(), exc))
                record = started
        if out is None:  # another run started it: follow it as a 'started' install
            return run(conn, dom, record, want_running, wait, plan_factory, final_xml,
                       check_mode=check_mode, sleep=sleep, monotonic=monotonic,
                       on_completed=on_completed, lock=lock)
        out['started_installer'] = True
    elif state == 'started':
        if not is_shut_off(dom) and not live_is_installer(dom):
            # Someone started the final configuration: the install phase is over.
            if not check_mode:
                _complete(dom, record, on_completed)
            out['changed'] = True
            out['install_phase'] = PHASE_COMPLETED
            return out
        out['install_phase'] = PHASE_STARTED
    else:
        return out

    if check_mode:
        if is_shut_off(dom):
            check_installer_finished(dom)
            out['changed'] = True
            out['install_phase'] = PHASE_COMPLETED
            out['started_final'] = want_running
        return out

    ended = wait_for_shutoff(dom, wait, sleep=sleep, monotonic=monotonic)
    if not ended:
        out['install_phase'] = PHASE_TIMED_OUT if wait != 0 else PHASE_STARTED
        return out
    with lock(dom):
        now = current_record(dom)
        if now is not None and now.get('state') == 'completed':
            # another run saw the end first and completed it
            out['install_phase'] = PHASE_COMPLETED
            return out
        if not is_shut_off(dom):
            # another run started the final configuration (or a new installer) meanwhile
            out['install_phase'] = PHASE_STARTED if live_is_installer(dom) else PHASE_COMPLETED
            return out
        check_installer_finished(dom)
        _complete(dom, record, on_completed)
        out['changed'] = True
        out['install_phase'] = PHASE_COMPLETED
        if want_running:
            dom.create()
            out['started_final'] = True
    return out


def _complete(dom, record, on_completed):
    done = dict(record, state='completed', completed=utc_now())
    done.pop('phase', None)
    write_record(dom, done)
    if on_completed is not None:
        on_completed(done)
