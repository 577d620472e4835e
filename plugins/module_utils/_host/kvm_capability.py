# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can this host really run KVM guests, and which libvirt domain type should it use?

Private to the collection: no API promise beyond gather_kvm_capability(root, conn).

The answer is decided from the CPU flag, /dev/kvm and the KVM vendor module together, never
by starting a VM (on some hosts a KVM guest hangs forever). Everything is read under `root`
so that a mounted host image, a sosreport or a unit test's fake tree can be inspected.
Nothing here changes the host. libvirt is optional: absent or down is reported, not raised.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common import hostfiles
from ansible_collections.kvmops.hypervisor.plugins.module_utils._host.cpuinfo import parse_cpuinfo
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import capabilities
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.qemu_identity import qemu_identity

X86_ARCHES = ('x86_64', 'i686', 'i386')
# CPU flag -> the vendor modules that drive it.
VENDOR_MODULES = {'vmx': ('kvm_intel',), 'svm': ('kvm_amd',)}
# Modules that can sit behind /dev/kvm without being the hardware KVM of x86.
OTHER_KVM_MODULES = {
    'kvm_pvm': 'PVM (Pagetable-based Virtual Machine: a paravirtualized KVM for running '
               'inside cloud VMs that lack VT-x/AMD-V)',
}
# QEMU target per machine architecture (for /usr/bin/qemu-system-<target>).
QEMU_TARGETS = {
    'x86_64': 'x86_64', 'i686': 'i386', 'i386': 'i386', 'aarch64': 'aarch64',
    'ppc64le': 'ppc64', 'ppc64': 'ppc64', 's390x': 's390x',
}
# virt-host-validate qemu: the cgroup controllers libvirt's QEMU driver uses.
CGROUP_V1_CONTROLLERS = ('cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'blkio')
# The QEMU user/group each distribution family builds libvirt with.
PASS, WARN, FAIL = 'PASS', 'WARN', 'FAIL'


# ----------------------------------------------------------------------------- reading files

_p = hostfiles.under
_read = hostfiles.read
_listdir = hostfiles.listdir
_is_live = hostfiles.is_live
Accounts = hostfiles.Accounts


# ----------------------------------------------------------------------------- pieces

def read_cpu(root):
    """CPU facts from <root>/proc/cpuinfo; arch from uname on the live host."""
    arch = None
    if _is_live(root):
        arch = os.uname()[4]
    else:
        arch = (_read(root, '/proc/sys/kernel/arch', '') or '').strip() or None
    return parse_cpuinfo(_read(root, '/proc/cpuinfo', '') or '', arch=arch)


def read_modules(root, cpu):
    """Loaded KVM modules (from /sys/module), the vendor module and its nested parameter."""
    loaded = [m for m in _listdir(root, '/sys/module') if m == 'kvm' or m.startswith('kvm_')]
    vendor = None
    ext = cpu.get('virt_extension')
    candidates = list(VENDOR_MODULES.get(ext, ()))
    if cpu.get('arch') in X86_ARCHES:
        candidates += ['kvm_intel', 'kvm_amd']
    elif cpu.get('arch') in ('ppc64le', 'ppc64'):
        candidates += ['kvm_hv', 'kvm_pr']
    elif cpu.get('arch') in ('s390x', 'aarch64'):
        candidates += ['kvm']
    for c in candidates:
        if c in loaded:
            vendor = c
            break
    nested = None
    if vendor is not None:
        value = _read(root, '/sys/module/%s/parameters/nested' % vendor)
        if value is not None:
            value = value.strip().upper()
            if value in ('Y', '1'):
                nested = True
            elif value in ('N', '0'):
                nested = False
    return loaded, vendor, nested


def _mode_string(st_mode):
    kind = 'c' if stat.S_ISCHR(st_mode) else ('d' if stat.S_ISDIR(st_mode) else '-')
    bits = ''
    for who in ('USR', 'GRP', 'OTH'):
        for what in ('R', 'W', 'X'):
            bits += what.lower() if st_mode & getattr(stat, 'S_I%s%s' % (what, who)) else '-'
    return kind + bits


def read_kvm_device(root, accounts):
    """/dev/kvm: presence, owner/group/mode, access for root and for QEMU's user."""
    path = _p(root, '/dev/kvm')
    dev = {
        'path': '/dev/kvm', 'present': False, 'char_device': False, 'owner': None,
        'group': None, 'mode': None, 'permissions': None, 'root_access': False,
        'qemu_user': None, 'qemu_group': None, 'qemu_user_source': None,
        'qemu_access': None, 'qemu_access_via': None,
    }
    ident = qemu_identity(root, accounts)
    dev['qemu_user'], dev['qemu_group'] = ident['user'], ident['group']
    dev['qemu_user_source'] = ident['source']
    try:
        st = os.stat(path)
    except OSError:
        return dev
    dev['present'] = True
    dev['char_device'] = stat.S_ISCHR(st.st_mode)
    dev['owner'] = accounts.user_name(st.st_uid)
    dev['group'] = accounts.group_name(st.st_gid)
    dev['mode'] = '%04o' % stat.S_IMODE(st.st_mode)
    dev['permissions'] = _mode_string(st.st_mode)
    if _is_live(root) and os.geteuid() == 0:
        dev['root_access'] = os.access(path, os.R_OK | os.W_OK)
    else:
        dev['root_access'] = True  # root (CAP_DAC_OVERRIDE) opens any device node
    if ident['uid'] is None:
        return dev
    uid, gids = ident['uid'], ident['gids']
    if uid == 0:
        dev['qemu_access'], dev['qemu_access_via'] = True, 'root'
        return dev
    m = st.st_mode
    if st.st_uid == uid:
        ok = bool(m & stat.S_IRUSR and m & stat.S_IWUSR)
        via = 'owner'
    elif st.st_gid in gids:
        ok = bool(m & stat.S_IRGRP and m & stat.S_IWGRP)
        via = 'group %s' % dev['group']
    else:
        ok = bool(m & stat.S_IROTH and m & stat.S_IWOTH)
        via = 'other'
    dev['qemu_access'], dev['qemu_access_via'] = ok, via
    return dev


def read_cgroups(root):
    """Controllers available to libvirt: cgroup v1 mounts plus the v2 hierarchy's list."""
    mounts = _read(root, '/proc/mounts')
    if mounts is None:
        return None, None
    available = set()
    version = set()
    for line in mounts.splitlines():
        f = line.split()
        if len(f) < 4:
            continue
        if f[2] == 'cgroup':
            version.add('v1')
            available.update(o for o in f[3].split(',') if o in CGROUP_V1_CONTROLLERS)
        elif f[2] == 'cgroup2':
            version.add('v2')
            ctl = (_read(root, os.path.join(f[1], 'cgroup.controllers'), '') or '').split()
            if ctl:
                # v2: cpu includes accounting, io replaces blkio, devices is a BPF program.
                available.update(c for c in ctl if c in CGROUP_V1_CONTROLLERS)
                if 'cpu' in ctl:
                    available.add('cpuacct')
                if 'io' in ctl:
                    available.add('blkio')
                available.add('devices')
    return sorted(available), '+'.join(sorted(version)) or None


def read_iommu(root):
    groups = len(_listdir(root, '/sys/kernel/iommu_groups'))
    tables = [t for t in ('DMAR', 'IVRS') if os.path.exists(_p(root, '/sys/firmware/acpi/tables/' + t))]
    return groups, tables


def _version(n):
    try:
        n = int(n)
    except (TypeError, ValueError):
        return None
    return '%d.%d.%d' % (n // 1000000, (n // 1000) % 1000, n % 1000)


def _running_daemons(root):
    found = set()
    for pid in _listdir(root, '/proc'):
        if not pid.isdigit():
            continue
        comm = (_read(root, '/proc/%s/comm' % pid, '') or '').strip()
        if comm in ('libvirtd', 'virtqemud', 'virtproxyd'):
            found.add(comm)
    return sorted(found)


def read_libvirt(root, conn, arch, uri=None, error=None, caps=None):
    """What libvirt offers: daemon mode, versions, domain types and emulators for `arch`."""
    info = {
        'installed': False, 'daemons_installed': [], 'daemons_running': [], 'sockets': [],
        'daemon_mode': None, 'connected': False, 'uri': uri, 'error': error,
        'library_version': None, 'hypervisor_name': None, 'hypervisor_version': None,
        'host_arch': None, 'domain_types': [], 'advertises_kvm': False, 'emulators': {},
        'guest_arches': [], 'summary': None,
    }
    for d in ('libvirtd', 'virtqemud'):
        if any(os.path.exists(_p(root, b + d)) for b in ('/usr/sbin/', '/usr/bin/')):
            info['daemons_installed'].append(d)
    info['sockets'] = [s for s in ('/run/libvirt/virtqemud-sock', '/run/libvirt/libvirt-sock')
                       if os.path.exists(_p(root, s))]
    info['daemons_running'] = _running_daemons(root)
    if 'virtqemud' in info['daemons_running'] or '/run/libvirt/virtqemud-sock' in info['sockets']:
        info['daemon_mode'] = 'split'
    elif 'libvirtd' in info['daemons_running'] or '/run/libvirt/libvirt-sock' in info['sockets']:
        info['daemon_mode'] = 'monolithic'
    elif info['daemons_installed'] == ['virtqemud']:
        info['daemon_mode'] = 'split'
    elif 'libvirtd' in info['daemons_installed']:
        info['daemon_mode'] = 'monolithic'
    info['installed'] = bool(info['daemons_installed']) or conn is not None

    if conn is not None:
        try:
            info['library_version'] = _version(conn.getLibVersion())
            info['hypervisor_name'] = conn.getType()
            info['hypervisor_version'] = _version(conn.getVersion())
            if caps is None:
                caps = capabilities.read(conn)
            info['connected'] = True
            info['error'] = None
        except Exception as exc:  # libvirtError or a dead connection: report, never fail
            info['error'] = 'libvirt did not answer: %s' % exc
            caps = None
        if caps is not None:
            host_arch = caps.host_arch or arch
            info['host_arch'] = host_arch
            info['guest_arches'] = caps.guest_arches()
            for t, emulator in caps.domain_types(host_arch):
                info['domain_types'].append(t)
                info['emulators'][t] = emulator
            info['advertises_kvm'] = 'kvm' in info['domain_types']
            for t in info['domain_types']:
                try:
                    dc = lxml_util.parse(conn.getDomainCapabilities(None, host_arch, None, t, 0))
                    if dc.findtext('path'):
                        info['emulators'][t] = dc.findtext('path')
                except Exception:  # read-only connections may not ask: keep the caps value
                    pass

    where = (' on %s' % uri) if uri else ''
    if info['connected']:
        info['summary'] = '%s %s answers%s (%s daemon), %s %s, domain types for %s: %s.' % (
            'virtqemud' if info['daemon_mode'] == 'split' else 'libvirtd',
            info['library_version'], where, info['daemon_mode'] or 'unknown',
            info['hypervisor_name'], info['hypervisor_version'], info['host_arch'],
            ', '.join(info['domain_types']) or 'none')
    elif not info['installed']:
        info['summary'] = ('libvirt is not installed (no libvirtd or virtqemud found): install '
                           'it before defining guests.')
    elif conn is None and not info['error']:
        info['summary'] = ('libvirt was not queried (%s); installed: %s; running: %s.' % (
            'an inspected tree, not the live host' if not _is_live(root) else 'no connection given',
            ', '.join(info['daemons_installed']) or 'none',
            ', '.join(info['daemons_running']) or 'none'))
    else:
        info['summary'] = ('libvirt is installed (%s) but did not answer%s: %s. Start %s.' % (
            ', '.join(info['daemons_installed']) or 'client only', where,
            info['error'] or 'no connection was made',
            'virtqemud' if info['daemon_mode'] == 'split' else 'libvirtd'))
    return info


def find_emulator(root, arch, libvirt_info, domain_type):
    path = libvirt_info.get('emulators', {}).get(domain_type)
    if path:
        return path
    target = QEMU_TARGETS.get(arch)
    candidates = ['/usr/libexec/qemu-kvm']
    if target:
        candidates.append('/usr/bin/qemu-system-%s' % target)
    candidates += ['/usr/bin/qemu-kvm', '/usr/bin/kvm']
    for c in candidates:
        if os.path.exists(_p(root, c)):
            return c
    return None


# ----------------------------------------------------------------------------- decision

def _check(name, result, detail):
    return {'name': name, 'result': result, 'detail': detail}


def decide(facts):
    """Fill kvm_usable, domain_type, reasons and checks from the gathered facts."""
    blockers, notes, checks = [], [], []
    _decide_cpu(facts, blockers, checks)
    _decide_module(facts, blockers, checks)
    _decide_kvm_device(facts, blockers, checks)
    _decide_devices(facts, checks)
    _decide_libvirt(facts, blockers, notes, checks)
    usable, reasons = _summarise(facts, blockers, notes)
    return usable, reasons, checks


def _decide_cpu(facts, blockers, checks):
    """Hardware virtualization in the CPU."""
    arch = facts['arch']
    ext = facts['virt_extension']
    n = facts['logical_cpus']
    dev = facts['kvm_device']
    if arch in X86_ARCHES:
        if ext is None:
            blockers.append('The CPU reports no vmx/svm flag on any of its %d logical CPUs: '
                            'hardware virtualization (Intel VT-x / AMD-V) is absent or disabled '
                            'in firmware.' % n)
            if facts['hypervisor']:
                blockers.append('This host is itself a virtual machine (the CPU carries the '
                                '"hypervisor" flag) and its hypervisor does not pass VT-x/AMD-V '
                                'through: enable nested virtualization on the outer hypervisor, '
                                'or choose an instance type that exposes it.')
            else:
                blockers.append('If the CPU supports VT-x/AMD-V, enable it in the firmware '
                                '(BIOS/UEFI) setup and power-cycle the host.')
            checks.append(_check('hardware virtualization', FAIL,
                                 'no vmx/svm flag in /proc/cpuinfo (%d logical CPUs)' % n))
        else:
            detail = '%s on %d of %d logical CPUs' % (ext, facts['virt_flag_count'], n)
            if facts['virt_flag_count'] < n:
                checks.append(_check('hardware virtualization', WARN, detail + ': inconsistent '
                                     'firmware settings or a hot-plugged CPU'))
            else:
                checks.append(_check('hardware virtualization', PASS, detail))
    elif arch == 's390x':
        if ext is None:
            blockers.append('The CPU features line has no "sie" (Start Interpretive Execution): '
                            'this LPAR or guest cannot run KVM guests.')
            checks.append(_check('hardware virtualization', FAIL, 'no sie in /proc/cpuinfo features'))
        else:
            checks.append(_check('hardware virtualization', PASS,
                                 'sie in the machine-wide features line: all %d CPUs' % n))
    else:
        if arch is None:
            detail = ('/proc/cpuinfo is unrecognised (no field of a known architecture): KVM '
                      'availability can only come from the kernel and /dev/kvm')
        else:
            detail = ('%s CPUs carry no virtualization flag in /proc/cpuinfo: KVM availability '
                      'comes from the kernel and /dev/kvm' % arch)
        checks.append(_check('hardware virtualization', PASS if dev['present'] else FAIL, detail))


def _decide_module(facts, blockers, checks):
    """The KVM module behind /dev/kvm."""
    arch = facts['arch']
    ext = facts['virt_extension']
    dev = facts['kvm_device']
    mods = facts['kvm_modules']
    vendor = facts['kvm_vendor_module']
    others = [m for m in mods if m in OTHER_KVM_MODULES]
    if arch in X86_ARCHES:
        wanted = VENDOR_MODULES.get(ext, ('kvm_intel', 'kvm_amd'))
        if vendor is not None and vendor in wanted:
            nested = {True: 'on', False: 'off', None: 'unknown'}[facts['nested']]
            checks.append(_check('kvm kernel module', PASS, '%s is loaded (nested: %s)' % (vendor, nested)))
        elif others:
            m = others[0]
            blockers.append(
                '/dev/kvm is provided by %s, %s, not by kvm_intel or kvm_amd: ordinary QEMU/KVM '
                'guests abort ("failed to set MSR") or hang on it.' % (m, OTHER_KVM_MODULES[m]))
            checks.append(_check('kvm kernel module', FAIL,
                                 'only %s is loaded (%s); kvm_intel/kvm_amd are not' % (m, ', '.join(mods))))
        elif ext is not None:
            mod = wanted[0]
            blockers.append(
                'The CPU has %s but the %s module is not loaded: run "modprobe %s"; if that fails '
                'with "disabled by bios", enable %s in the firmware setup.'
                % (ext, mod, mod, 'VT-x' if ext == 'vmx' else 'AMD-V (SVM)'))
            checks.append(_check('kvm kernel module', FAIL, '%s is not loaded' % mod))
        else:
            checks.append(_check('kvm kernel module', FAIL if not mods else WARN,
                                 'loaded: %s' % (', '.join(mods) or 'none')))
    else:
        checks.append(_check('kvm kernel module', PASS if (mods or dev['present']) else FAIL,
                             'loaded: %s' % (', '.join(mods) or 'none found in /sys/module')))


def _decide_kvm_device(facts, blockers, checks):
    """/dev/kvm: present, a character device, open-able by QEMU."""
    dev = facts['kvm_device']
    live = facts['_live']
    if not dev['present']:
        blockers.append('/dev/kvm does not exist: the KVM kernel module is not loaded or the '
                        'kernel was built without KVM.')
        checks.append(_check('/dev/kvm exists', FAIL, 'missing'))
    elif not dev['char_device']:
        detail = 'present but not a character device (%s)' % dev['permissions']
        if live:
            blockers.append('/dev/kvm is not a character device: something replaced the device '
                            'node; reload the KVM modules or reboot.')
            checks.append(_check('/dev/kvm exists', FAIL, detail))
        else:
            checks.append(_check('/dev/kvm exists', WARN, detail + ' in the inspected tree'))
    else:
        checks.append(_check('/dev/kvm exists', PASS, 'character device'))

    if dev['present']:
        desc = '%s %s:%s' % (dev['permissions'], dev['owner'], dev['group'])
        who = dev['qemu_user']
        if not dev['root_access']:
            blockers.append('/dev/kvm (%s) cannot be opened for reading and writing even by '
                            'root: a device cgroup or a read-only /dev blocks it.' % desc)
            checks.append(_check('/dev/kvm is accessible', FAIL, desc + '; root cannot open it'))
        elif dev['qemu_access'] is False:
            blockers.append(
                'QEMU runs as %s (%s), which cannot open /dev/kvm (%s): run "chgrp kvm /dev/kvm; '
                'chmod 0660 /dev/kvm" (what udev does on a normal host) and make %s a member of '
                'group kvm.' % (who, dev['qemu_user_source'], desc, who))
            checks.append(_check('/dev/kvm is accessible', FAIL,
                                 '%s; QEMU user %s cannot open it' % (desc, who)))
        elif dev['qemu_access'] is None:
            checks.append(_check('/dev/kvm is accessible', WARN,
                                 '%s; QEMU user %s unknown on this host' % (desc, who or '(none)')))
        else:
            checks.append(_check('/dev/kvm is accessible', PASS, '%s; QEMU user %s can open it via %s'
                                 % (desc, who, dev['qemu_access_via'])))


def _decide_devices(facts, checks):
    """Other devices, cgroups, IOMMU (virt-host-validate qemu)."""
    for path, level, hint in (
            ('/dev/vhost-net', WARN, 'load vhost_net ("modprobe vhost_net") for in-kernel '
                                     'virtio-net acceleration'),
            ('/dev/net/tun', FAIL, 'load tun ("modprobe tun"): tap networking needs it')):
        present = facts['devices'][path]
        checks.append(_check('%s exists' % path, PASS if present else level,
                             'present' if present else 'missing: ' + hint))

    ctl, cg_version = facts['cgroup_controllers'], facts['cgroup_version']
    if ctl is None:
        checks.append(_check('cgroup controllers', WARN, 'cannot read /proc/mounts'))
    else:
        missing = [c for c in CGROUP_V1_CONTROLLERS if c not in ctl]
        checks.append(_check('cgroup controllers', WARN if missing else PASS,
                             ('missing: %s' % ', '.join(missing)) if missing else
                             'cgroup %s: %s' % (cg_version, ', '.join(CGROUP_V1_CONTROLLERS))))

    groups, tables = facts['iommu_groups'], facts['iommu_acpi_tables']
    if groups:
        checks.append(_check('IOMMU enabled', PASS, '%d IOMMU groups' % groups))
    elif tables:
        checks.append(_check('IOMMU enabled', WARN, 'the firmware describes an IOMMU (%s) but the '
                             'kernel did not enable it: add intel_iommu=on (Intel) or check '
                             'amd_iommu on the kernel command line for PCI device assignment'
                             % ', '.join(tables)))
    else:
        checks.append(_check('IOMMU enabled', WARN, 'no IOMMU groups: PCI device assignment '
                             '(VFIO) is unavailable (no IOMMU, or disabled in firmware)'))


def _decide_libvirt(facts, blockers, notes, checks):
    """libvirt: what it advertises against what the kernel allows."""
    lv = facts['libvirt']
    if lv['connected']:
        if lv['advertises_kvm'] and blockers:
            notes.append('libvirt nevertheless advertises domain type "kvm" (it only checks that '
                         '/dev/kvm answers); do not rely on that: guests of type kvm would fail '
                         'to start or hang.')
        elif not lv['advertises_kvm'] and not blockers:
            blockers.append('libvirt does not offer domain type "kvm" for %s (its QEMU lacks KVM '
                            'support or cannot open /dev/kvm); restart %s after fixing /dev/kvm.'
                            % (lv['host_arch'], 'virtqemud' if lv['daemon_mode'] == 'split' else 'libvirtd'))
        checks.append(_check('libvirt', PASS, lv['summary']))
    else:
        checks.append(_check('libvirt', WARN, lv['summary']))


def _summarise(facts, blockers, notes):
    """(usable, reasons): the blockers, or why KVM works, then the notes."""
    arch = facts['arch']
    ext = facts['virt_extension']
    n = facts['logical_cpus']
    vendor = facts['kvm_vendor_module']
    usable = not blockers
    if usable:
        items = []
        if ext:
            items.append('the CPU has %s on %d of %d logical CPUs' % (ext, facts['virt_flag_count'], n))
        if vendor:
            items.append('the %s module is loaded' % vendor)
        items.append('/dev/kvm is accessible to QEMU')
        sentence = items[-1] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]
        if sentence.startswith('the '):
            sentence = 'The ' + sentence[4:]
        reasons = [sentence + ': guests can use KVM (domain type "kvm").']
        if not ext and arch not in X86_ARCHES and arch != 's390x':
            reasons.append('%s CPUs have no virtualization flag in /proc/cpuinfo, so /dev/kvm and '
                           'the kernel decide.' % (arch or 'These'))
        if facts['hypervisor']:
            reasons.append('This host is itself a virtual machine: its KVM guests run nested, '
                           'slower than on bare metal.')
        if facts['nested'] is False:
            notes.append('Nested virtualization is off in %s: guests cannot run KVM guests of '
                         'their own (set "options %s nested=1" to allow it).' % (vendor, vendor))
    else:
        reasons = list(blockers)
    reasons += notes
    if not usable:
        reasons.append('Guests will run under QEMU software emulation (TCG, domain type '
                       '"qemu"): they work, but much slower than with KVM.')
    return usable, reasons


# ----------------------------------------------------------------------------- entry point

def gather_kvm_capability(root='/', conn=None, uri=None, libvirt_error=None, caps=None):
    """Gather the kvm_capability facts.

    root: read proc, sys, dev and etc under this directory ('/' = the live host).
    conn: an open libvirt connection, or None (libvirt absent/down: reported, never raised).
    uri, libvirt_error: for the libvirt section's wording when the caller could not connect.
    Never starts a VM and never changes anything.
    """
    root = root or '/'
    live = _is_live(root)
    cpu = read_cpu(root)
    accounts = Accounts(root)
    mods, vendor, nested = read_modules(root, cpu)
    ctl, cg_version = read_cgroups(root)
    groups, tables = read_iommu(root)
    facts = {
        'arch': cpu['arch'],
        'cpu_vendor': cpu['cpu_vendor'],
        'cpu_model': cpu['cpu_model'],
        'logical_cpus': cpu['logical_cpus'],
        'virt_extension': cpu['virt_extension'],
        'virt_flag_count': cpu['virt_flag_count'],
        'hypervisor': cpu['hypervisor'],
        'kvm_device': read_kvm_device(root, accounts),
        'kvm_modules': mods,
        'kvm_vendor_module': vendor,
        'nested': nested,
        'devices': dict((p, os.path.exists(_p(root, p))) for p in ('/dev/vhost-net', '/dev/net/tun')),
        'cgroup_controllers': ctl,
        'cgroup_version': cg_version,
        'iommu_groups': groups,
        'iommu_acpi_tables': tables,
        'libvirt': read_libvirt(root, conn, cpu['arch'], uri=uri, error=libvirt_error, caps=caps),
        '_live': live,
    }
    usable, reasons, checks = decide(facts)
    del facts['_live']
    facts['kvm_usable'] = usable
    facts['domain_type'] = 'kvm' if usable else 'qemu'
    facts['reasons'] = reasons
    facts['checks'] = checks
    facts['emulator'] = find_emulator(root, cpu['arch'], facts['libvirt'], facts['domain_type'])
    facts['root'] = root
    return facts
