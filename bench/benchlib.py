# -*- coding: utf-8 -*-
"""Helpers for the benchmarks: timing, Ansible runs, libvirt snapshots and clean-up.

Controller-side code (runs in the venv), not part of the collection's plugins.
"""
import glob
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import libvirt

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(REPO, 'tests'))
from support import libvirt_helpers  # noqa: E402  # the tests' clean-up, shared

remove_domain = libvirt_helpers.remove_domain
remove_everything_named = libvirt_helpers.remove_everything_named

WORK = os.path.join(BENCH, '.work')
RAW = os.path.join(WORK, 'raw')
VENV = os.environ.get('KVMOPS_VENV', os.path.join(REPO, '.venv'))
COLLECTIONS_DIR = os.path.join(REPO, '.build', 'collections')
PLAYBOOKS = os.path.join(BENCH, 'playbooks')
URI = 'qemu:///system'
# BENCH_PREFIX: another name space for a run beside someone else's benchmark on the same host
# (every clean-up removes everything carrying the prefix; no default prefix may start with
# another's).
PREFIX = os.environ.get('BENCH_PREFIX', 'kvmops-bench-')
IMAGE_ROOT = '/var/lib/libvirt/images'
IMG_DIR = os.path.join(IMAGE_ROOT, PREFIX + 'img')
TINY = os.environ.get('KVMOPS_ASSETS', '/var/cache/kvmops-testbed/tiny')
KERNEL = os.path.join(TINY, 'vmlinuz')
INITRD = os.path.join(TINY, 'initrd.img')
TARGET_PYTHON = '/usr/bin/python3'
GIB = 1024 ** 3


# CPU seconds (user + system) that the last run_cmd/run_playbook used in its own process tree:
# the tool itself (ansible-playbook, its workers and module processes, or virt-install), not
# libvirtd or the QEMU processes of the guests.
LAST_CPU = [0.0]


def _children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class BenchError(Exception):
    pass


def log(msg):
    print('[bench %s] %s' % (time.strftime('%H:%M:%S'), msg), flush=True)


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def summary(samples):
    """median/min/max of a list of seconds (None when nothing was measured)."""
    if not samples:
        return None
    return {'median': statistics.median(samples), 'min': min(samples), 'max': max(samples),
            'n': len(samples), 'samples': [round(s, 4) for s in samples]}


# --- Ansible ---------------------------------------------------------------------------

def ansible_env(extra=None):
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS_DIR,
        'ANSIBLE_STDOUT_CALLBACK': 'ansible.posix.json',
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
        'ANSIBLE_PYTHON_INTERPRETER': TARGET_PYTHON,
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'ANSIBLE_LOCALHOST_WARNING': '0',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': '0',
        'ANSIBLE_DEPRECATION_WARNINGS': '0',
        'ANSIBLE_HOST_KEY_CHECKING': '0',
        'PATH': os.path.join(VENV, 'bin') + os.pathsep + env.get('PATH', ''),
    })
    env.update(extra or {})
    return env


def write_vars(name, data):
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, name + '.vars.json')
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


def _task_counts(doc):
    """ok/changed/failed counts per task item (loops count each item) and per host."""
    items = changed = failed = 0
    for play in doc.get('plays', []):
        for task in play.get('tasks', []):
            for res in task.get('hosts', {}).values():
                results = res.get('results') if isinstance(res.get('results'), list) else [res]
                for r in results:
                    if r.get('skipped'):
                        continue
                    items += 1
                    changed += 1 if r.get('changed') else 0
                    failed += 1 if r.get('failed') else 0
    stats = {}
    for host, s in doc.get('stats', {}).items():
        keys = ('ok', 'changed', 'failures', 'unreachable', 'skipped')
        stats[host] = {k: s.get(k, 0) for k in keys}
    tasks = sum(len(p.get('tasks', [])) for p in doc.get('plays', []))
    return {'items': items, 'changed_items': changed, 'failed_items': failed, 'tasks': tasks,
            'stats': stats}


def _failure_text(doc):
    msgs = []
    for play in doc.get('plays', []):
        for task in play.get('tasks', []):
            for res in task.get('hosts', {}).values():
                results = res.get('results') if isinstance(res.get('results'), list) else [res]
                for r in results:
                    if r.get('failed') or r.get('unreachable'):
                        msgs.append('%s: %s' % (task.get('task', {}).get('name'),
                                                str(r.get('msg') or r.get('stderr') or r)[:800]))
    return '\n'.join(msgs[:5])


def run_playbook(playbook, extra_vars=None, check=False, inventory=None, env=None,
                 timeout=900, allow_fail=False, diff=False):
    """Run ansible-playbook; return (wall seconds, counts dict, json document)."""
    cmd = [os.path.join(VENV, 'bin', 'ansible-playbook')]
    if inventory:
        cmd += ['-i', inventory]
    else:
        cmd += ['-i', 'localhost,', '-c', 'local']
    cmd.append(playbook if os.path.isabs(playbook) else os.path.join(PLAYBOOKS, playbook))
    if extra_vars:
        cmd += ['-e', '@' + extra_vars]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    t0, c0 = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, env=ansible_env(env), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout,
                          cwd=REPO, check=False)
    dt = time.perf_counter() - t0
    LAST_CPU[0] = _children_cpu() - c0
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise BenchError('%s printed no JSON (rc=%s)\n%s\n%s' % (
            os.path.basename(playbook), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    counts = _task_counts(doc)
    counts['rc'] = proc.returncode
    if proc.returncode != 0 and not allow_fail:
        raise BenchError('%s failed (rc=%s):\n%s\n%s' % (
            os.path.basename(playbook), proc.returncode, _failure_text(doc), proc.stderr[-2000:]))
    return dt, counts, doc


def run_cmd(cmd, env=None, timeout=600, check=True):
    """Run a command; return (wall seconds, CompletedProcess)."""
    t0, c0 = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, check=False)
    dt = time.perf_counter() - t0
    LAST_CPU[0] = _children_cpu() - c0
    if check and proc.returncode != 0:
        raise BenchError('%s failed (rc=%s):\n%s\n%s' % (
            ' '.join(cmd[:3]), proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return dt, proc


def make_payload(module, args, tag):
    """Have Ansible build the module's AnsiballZ payload (what runs on the target) and keep it.

    Running the payload with the target's Python is the module's own time: interpreter
    start, unpacking, imports and the module's work, without the controller's cost.
    """
    rtmp = os.path.join(WORK, 'payloads', tag)
    shutil.rmtree(rtmp, ignore_errors=True)
    os.makedirs(rtmp)
    env = ansible_env({'ANSIBLE_KEEP_REMOTE_FILES': '1', 'ANSIBLE_REMOTE_TMP': rtmp,
                       'ANSIBLE_STDOUT_CALLBACK': 'default', 'ANSIBLE_LOAD_CALLBACK_PLUGINS': '0'})
    cmd = [os.path.join(VENV, 'bin', 'ansible'), 'localhost', '-i', 'localhost,', '-c', 'local',
           '-m', module]
    if args:
        cmd += ['-a', json.dumps(args)]
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300, cwd=REPO, check=False)
    found = glob.glob(os.path.join(rtmp, '*', 'AnsiballZ_*.py'))
    if not found:
        raise BenchError('no AnsiballZ payload for %s (rc=%s):\n%s\n%s' % (
            module, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return found[0]


def run_payload(path, timeout=300):
    """Run a kept payload with the target Python; return (seconds, result dict)."""
    dt, proc = run_cmd([TARGET_PYTHON, path], timeout=timeout, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise BenchError('payload %s printed no JSON (rc=%s): %s %s' % (
            path, proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:]))
    if result.get('failed'):
        raise BenchError('payload %s failed: %s' % (path, str(result.get('msg'))[:1500]))
    return dt, result


# --- libvirt -------------------------------------------------------------------------

_CONN = None


def conn():
    global _CONN
    if _CONN is None:
        libvirt.registerErrorHandler(lambda ctx, err: None, None)
        for attempt in range(50):  # libvirtd may be restarting (a converge, a test)
            try:
                _CONN = libvirt.open(URI)
                break
            except libvirt.libvirtError:
                if attempt == 49:
                    raise
                time.sleep(0.2)
    return _CONN


def reconnect():
    """Drop the cached connection (after a libvirtd restart)."""
    global _CONN
    if _CONN is not None:
        try:
            _CONN.close()
        except libvirt.libvirtError:
            pass
    _CONN = None


def cleanup(recreate_dir=True):
    """Remove every domain, volume, pool and file the benchmarks made (prefix kvmops-bench-)."""
    try:
        _cleanup(recreate_dir)
    except libvirt.libvirtError:
        # the connection died (libvirtd restarted under us): reconnect and try once more
        reconnect()
        _cleanup(recreate_dir)


def _cleanup(recreate_dir):
    remove_everything_named(conn(), PREFIX, under=IMG_DIR, parallel=True)
    shutil.rmtree(IMG_DIR, ignore_errors=True)
    if recreate_dir:
        os.makedirs(IMG_DIR, mode=0o755)
        os.chmod(IMG_DIR, 0o755)


def bench_objects():
    """Names of every libvirt object and file the benchmarks own right now."""
    snap = snapshot()
    return {k: [x for x in v if PREFIX in x] for k, v in snap.items()}


def snapshot():
    """Everything check mode must not touch: domains, pools, volumes, networks, image files."""
    c = conn()
    doms = sorted('%s:%s' % (d.name(), 'active' if d.isActive() else 'inactive')
                  for d in c.listAllDomains())
    pools, vols = [], []
    for p in c.listAllStoragePools():
        pools.append('%s:%s' % (p.name(), 'active' if p.isActive() else 'inactive'))
        try:
            if p.isActive():
                vols.extend('%s/%s' % (p.name(), v.name()) for v in p.listAllVolumes())
        except libvirt.libvirtError:
            pass
    nets = sorted('%s:%s' % (n.name(), 'active' if n.isActive() else 'inactive')
                  for n in c.listAllNetworks())
    files = []
    for top, dirs, names in os.walk(IMAGE_ROOT):
        for n in dirs + names:
            p = os.path.join(top, n)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            files.append('%s size=%d' % (p, st.st_size if not os.path.isdir(p) else 0))
    return {'domains': doms, 'pools': sorted(pools), 'volumes': sorted(vols),
            'networks': nets, 'files': sorted(files)}


def snapshot_diff(before, after):
    """Added/removed entries per kind, split into the benchmark's own and others' (noise)."""
    diff = {}
    for kind in before:
        b, a = set(before[kind]), set(after[kind])
        added, removed = sorted(a - b), sorted(b - a)
        diff[kind] = {
            'added': [x for x in added if PREFIX in x],
            'removed': [x for x in removed if PREFIX in x],
            'foreign_changes': len([x for x in added + removed if PREFIX not in x]),
        }
    return diff


def side_effects(diff):
    return sum(len(d['added']) + len(d['removed']) for d in diff.values())


def wait_quiet(names, timeout=120, threshold=0.25):
    """Wait until the named domains have stopped booting (their CPU use per second is low)."""
    c = conn()
    t0 = time.monotonic()

    def cputime():
        total = 0
        for n in names:
            try:
                total += c.lookupByName(n).info()[4]
            except libvirt.libvirtError:
                pass
        return total / 1e9

    prev = cputime()
    while time.monotonic() - t0 < timeout:
        time.sleep(1.0)
        now = cputime()
        if now - prev < threshold:
            return time.monotonic() - t0
        prev = now
    return time.monotonic() - t0


def guests_cpu_seconds(names):
    """CPU time the named guests have used so far (their boots compete with the tool)."""
    total = 0
    for n in names:
        try:
            total += conn().lookupByName(n).info()[4]
        except libvirt.libvirtError:
            pass
    return total / 1e9


FLOOR_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{disk}'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <interface type='network'><source network='default'/></interface>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
    <serial type='pty'/>
    <console type='pty'/>
  </devices>
</domain>"""


def libvirt_floor(names):
    """Floor (d): the same guests straight through libvirt-python, in this process.

    Per guest: a 1 GiB sparse raw file (ftruncate), defineXML of a fixed XML, create(). No
    option handling, no checks, no Ansible: what any tool has to pay libvirtd and QEMU.
    Returns (wall seconds, CPU seconds of this process).
    """
    c = conn()
    t0, p0 = time.perf_counter(), time.process_time()
    for n in names:
        path = os.path.join(IMG_DIR, n + '.img')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(fd, GIB)
        os.close(fd)
        dom = c.defineXML(FLOOR_XML.format(name=n, kernel=KERNEL, initrd=INITRD, disk=path))
        dom.create()
    return time.perf_counter() - t0, time.process_time() - p0


def verify_guests(names, expect_active=True, size_gib=1):
    """Independent check (libvirt + files) that a tool made the guests the case asks for."""
    c = conn()
    problems = []
    for n in names:
        try:
            dom = c.lookupByName(n)
        except libvirt.libvirtError:
            problems.append('%s: missing' % n)
            continue
        if expect_active and not dom.isActive():
            problems.append('%s: not running' % n)
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if root.get('type') != 'qemu':
            problems.append('%s: domain type %s' % (n, root.get('type')))
        disks = [d for d in root.findall('./devices/disk') if d.get('device', 'disk') == 'disk']
        if len(disks) != 1:
            problems.append('%s: %d disks' % (n, len(disks)))
        for d in disks:
            drv = d.find('driver')
            src = d.find('source')
            path = src.get('file') if src is not None else None
            if drv is None or drv.get('type') != 'raw':
                problems.append('%s: disk format %s' % (n, drv.get('type') if drv is not None else None))
            if not path or not os.path.exists(path):
                problems.append('%s: disk file %s missing' % (n, path))
            elif os.path.getsize(path) != size_gib * GIB:
                problems.append('%s: disk size %d' % (n, os.path.getsize(path)))
            elif os.stat(path).st_blocks * 512 > 64 * 1024 * 1024:
                problems.append('%s: disk not sparse' % n)
        ifaces = root.findall('./devices/interface')
        if len(ifaces) != 1 or ifaces[0].get('type') != 'network' or \
                ifaces[0].find('source').get('network') != 'default':
            problems.append('%s: interfaces %s' % (n, [i.get('type') for i in ifaces]))
        gfx = root.findall('./devices/graphics')
        if len(gfx) != 1 or gfx[0].get('type') != 'vnc':
            problems.append('%s: graphics %s' % (n, [g.get('type') for g in gfx]))
        else:
            listens = [gfx[0].get('listen')] + [x.get('address') for x in gfx[0].findall('listen')]
            if '127.0.0.1' not in listens:
                problems.append('%s: VNC listens on %s' % (n, listens))
    return problems


def write_section(name, text, path=None):
    """Put text (which starts and ends with the `<!-- section:NAME -->` markers) into
    bench/results.md in place of the old section NAME, or append it (bench/report.py keeps
    such sections when it rewrites the file)."""
    path = path or os.path.join(BENCH, 'results.md')
    begin, end = '<!-- section:%s -->' % name, '<!-- /section:%s -->' % name
    old = open(path).read() if os.path.exists(path) else ''
    if begin in old and end in old:
        new = old[:old.index(begin)] + text + old[old.index(end) + len(end):]
    else:
        new = old.rstrip('\n') + '\n\n' + text + '\n'
    with open(path, 'w') as f:
        f.write(new)


def save_raw(case, data):
    os.makedirs(RAW, exist_ok=True)
    name = case if isinstance(case, str) else 'case%s' % case
    with open(os.path.join(RAW, name + '.json'), 'w') as f:
        json.dump(data, f, indent=1, sort_keys=True)
