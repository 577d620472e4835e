# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse /proc/cpuinfo of x86, arm64, ppc64le and s390x hosts. Private to the collection.

What this gets right that ``egrep -c '(vmx|svm)' /proc/cpuinfo`` does not:

* it counts logical CPUs that carry the extension, not matching lines: Linux >= 5.x adds a
  per-CPU ``vmx flags`` line on Intel hosts, which a line count sees twice;
* on s390x the ``features`` line is machine-wide: when it holds ``sie``, every CPU counts;
* arm64 and ppc64le have no such flag at all (KVM there depends on /dev/kvm and the kernel);
* the ``hypervisor`` flag (x86) says the host is itself a guest.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

X86_VENDORS = {
    'GenuineIntel': 'intel',
    'AuthenticAMD': 'amd',
    'HygonGenuine': 'hygon',
    'CentaurHauls': 'centaur',
    '  Shanghai  ': 'zhaoxin',
    'Shanghai': 'zhaoxin',
}

# ARM "CPU implementer" codes (arch/arm64/include/asm/cputype.h).
ARM_IMPLEMENTERS = {
    0x41: 'arm',
    0x42: 'broadcom',
    0x43: 'cavium',
    0x46: 'fujitsu',
    0x48: 'hisilicon',
    0x4e: 'nvidia',
    0x50: 'apm',
    0x51: 'qualcomm',
    0x53: 'samsung',
    0x61: 'apple',
    0x6d: 'microsoft',
    0xc0: 'ampere',
}

# (implementer, part) -> marketing name, for the common server/SoC cores only.
ARM_PARTS = {
    (0x41, 0xd03): 'ARM Cortex-A53',
    (0x41, 0xd07): 'ARM Cortex-A57',
    (0x41, 0xd08): 'ARM Cortex-A72',
    (0x41, 0xd0c): 'ARM Neoverse-N1',
    (0x41, 0xd40): 'ARM Neoverse-V1',
    (0x41, 0xd49): 'ARM Neoverse-N2',
    (0x41, 0xd4f): 'ARM Neoverse-V2',
    (0x43, 0x0af): 'Cavium ThunderX2',
    (0x46, 0x001): 'Fujitsu A64FX',
    (0x48, 0xd01): 'HiSilicon Kunpeng 920',
    (0x50, 0x000): 'APM X-Gene',
    (0x51, 0x201): 'Qualcomm Kryo',
    (0x51, 0x205): 'Qualcomm Kryo',
    (0x51, 0x211): 'Qualcomm Kryo',
    (0x51, 0x800): 'Qualcomm Falkor',
    (0xc0, 0xac3): 'Ampere-1',
}

# IBM Z machine types (the "machine = NNNN" of /proc/cpuinfo).
S390_MACHINES = {
    '2817': 'IBM z196', '2818': 'IBM z114', '2827': 'IBM zEC12', '2828': 'IBM zBC12',
    '2964': 'IBM z13', '2965': 'IBM z13s', '3906': 'IBM z14', '3907': 'IBM z14 ZR1',
    '8561': 'IBM z15', '8562': 'IBM z15 T02', '3931': 'IBM z16', '3932': 'IBM z16 A02',
    '9175': 'IBM z17',
}

_S390_PROCESSOR = re.compile(r'^processor\s+(\d+)\s*:')
_MACHINE = re.compile(r'machine\s*=\s*(\w+)')


def _split(line):
    """'key<TAB>: value' -> ('key', 'value'); None for lines without a colon."""
    if ':' not in line:
        return None
    key, value = line.split(':', 1)
    return key.strip(), value.strip()


def _int(text, base=10):
    try:
        return int(text, base)
    except (TypeError, ValueError):
        return None


def infer_arch(text):
    """Guess the architecture from the shape of a cpuinfo dump (for inspected trees).

    ppc64 and ppc64le look the same in /proc/cpuinfo; ppc64le is assumed (the KVM hosts).
    """
    keys = set()
    vendor_id = None
    flags = set()
    lines = text.splitlines()
    if text and not text.endswith('\n'):
        lines = lines[:-1]  # a truncated last line (a cut 'flags' line would lose 'lm')
    for line in lines:
        kv = _split(line)
        if kv is None:
            continue
        keys.add(kv[0])
        if kv[0] == 'vendor_id' and vendor_id is None:
            vendor_id = kv[1]
        elif kv[0] == 'flags' and not flags:
            flags = set(kv[1].split())
    if vendor_id is not None and vendor_id.startswith('IBM/S390'):
        return 's390x'
    if 'CPU implementer' in keys:
        return 'aarch64'
    if 'cpu' in keys and ('timebase' in keys or 'revision' in keys):
        return 'ppc64le'
    if 'flags' in keys:
        return 'x86_64' if 'lm' in flags else 'i686'
    # x86 without a (complete) flags line: 64 or 32 bit cannot be told, so unrecognised.
    return None


def parse_cpuinfo(text, arch=None):
    """Facts from the text of /proc/cpuinfo.

    arch: the machine's architecture when known (uname); inferred from the text otherwise.
    Returns a dict: arch, cpu_vendor, cpu_model, logical_cpus, virt_extension (vmx, svm, sie
    or None), virt_flag_count (logical CPUs carrying it), hypervisor (x86 'hypervisor'
    flag), naive_line_count (what ``grep -cwE 'vmx|svm|sie'`` would say).
    """
    text = text or ''
    arch = arch or infer_arch(text)
    facts = {
        'arch': arch,
        'cpu_vendor': None,
        'cpu_model': None,
        'logical_cpus': 0,
        'virt_extension': None,
        'virt_flag_count': 0,
        'hypervisor': False,
        'naive_line_count': 0,
    }
    processors = 0
    s390_processors = 0
    s390_declared = None
    flag_lines = []        # x86 'flags' / arm64 'Features' / s390x 'features' token sets
    vendor_id = None
    model_name = None
    implementer = None
    parts = []
    hardware = None
    ppc_cpu = None
    ppc_model = None
    s390_machine = None
    naive = re.compile(r'\b(vmx|svm|sie)\b')
    for line in text.splitlines():
        if naive.search(line):
            facts['naive_line_count'] += 1
        m = _S390_PROCESSOR.match(line)
        if m:
            s390_processors += 1
            mm = _MACHINE.search(line)
            if mm and s390_machine is None:
                s390_machine = mm.group(1)
            continue
        kv = _split(line)
        if kv is None:
            continue
        key, value = kv
        if key == 'processor':
            # Exactly 'processor' with a number: one logical CPU. The capitalised
            # 'Processor : AArch64 ...' header of old arm64 kernels is not a CPU.
            if value.isdigit():
                processors += 1
        elif key in ('flags', 'Features', 'features'):
            flag_lines.append(set(value.split()))
        elif key == 'vendor_id' and vendor_id is None:
            vendor_id = value
        elif key == 'model name' and model_name is None:
            model_name = ' '.join(value.split())
        elif key == 'CPU implementer' and implementer is None:
            implementer = _int(value, 16)
        elif key == 'CPU part':
            part = _int(value, 16)
            if part is not None and part not in parts:
                parts.append(part)
        elif key == 'Hardware' and hardware is None:
            hardware = value
        elif key == 'cpu' and ppc_cpu is None:
            ppc_cpu = value
        elif key == 'model' and not value.isdigit() and ppc_model is None:
            ppc_model = value
        elif key == '# processors':
            s390_declared = _int(value)

    if arch == 's390x':
        facts['logical_cpus'] = s390_processors or s390_declared or 0
    else:
        facts['logical_cpus'] = processors

    # Vendor and model.
    if arch in ('x86_64', 'i686', 'i386'):
        facts['cpu_vendor'] = X86_VENDORS.get(vendor_id, (vendor_id or '').strip().lower() or None)
        facts['cpu_model'] = model_name
    elif arch == 'aarch64':
        if implementer is not None:
            facts['cpu_vendor'] = ARM_IMPLEMENTERS.get(implementer, '0x%02x' % implementer)
        names = []
        for part in parts:
            name = ARM_PARTS.get((implementer, part))
            if name is None:
                name = 'implementer 0x%02x part 0x%03x' % (implementer or 0, part)
            if name not in names:
                names.append(name)
        facts['cpu_model'] = ' / '.join(names) or hardware or model_name
    elif arch in ('ppc64le', 'ppc64'):
        facts['cpu_vendor'] = 'ibm'
        cpu = (ppc_cpu or '').split(',')[0].strip() or None
        if cpu and ppc_model:
            cpu = '%s (%s)' % (cpu, ppc_model)
        facts['cpu_model'] = cpu
    elif arch == 's390x':
        facts['cpu_vendor'] = 'ibm'
        if s390_machine:
            facts['cpu_model'] = S390_MACHINES.get(s390_machine, 'IBM Z machine type %s' % s390_machine)

    # Virtualization extension: count CPUs, not lines.
    if arch in ('x86_64', 'i686', 'i386'):
        vmx = sum(1 for f in flag_lines if 'vmx' in f)
        svm = sum(1 for f in flag_lines if 'svm' in f)
        if vmx or svm:
            facts['virt_extension'] = 'vmx' if vmx >= svm else 'svm'
            facts['virt_flag_count'] = max(vmx, svm)
        facts['hypervisor'] = any('hypervisor' in f for f in flag_lines)
    elif arch == 's390x':
        if any('sie' in f for f in flag_lines):
            facts['virt_extension'] = 'sie'
            facts['virt_flag_count'] = facts['logical_cpus']
    return facts
