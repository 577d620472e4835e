# -*- coding: utf-8 -*-
"""Many guests at once (issue 13): cases 7, 8 and 9 of bench/bench.py.

case 7 - create and start the 10 guests of case 1: ours as ONE task (virt_install_domains)
         against (a) the virt-install loop, (d) the libvirt floor (one after the other), the
         new floor (d2, libvirt-python from a thread pool of ours' size over one connection),
         (e) the virt-install loop run in parallel (`&`, `wait`; its failures counted) and, for
         reference, ours as a loop (virt_install_domain); then the re-run (case 2's question):
         ours as one task against (c), the no-op loop, with the module's own time.
case 8 - 4 guests installing from the tiny install tree with wait: ours as one task against
         the same 4 through virt_install_domain in a loop.
case 9 - the module process's peak RSS for 50 guests (defined, not started).
"""
import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import benchlib as B

GUESTS = ['%sg%02d' % (B.PREFIX, i) for i in range(1, 11)]
TREE = os.path.join(B.TINY, 'trees', 'rhel')
# noapic: under heavy load (other test runs) the tiny kernel's IO-APIC timer check can fail
# under TCG ("IO-APIC + timer doesn't work"), a panic that leaves the installer hanging.
INSTALLER_ARGS = 'console=ttyS0 noapic kvmops.installer=1'


def rotate(items, n):
    n %= len(items)
    return items[n:] + items[:n]


def default_parallel():
    cpus = os.cpu_count() or 1
    return max(4, 2 * cpus)  # = batch.default_parallel() (the module's own default)


def guest_vars(names=GUESTS):
    return {'bench_guests': [{'name': n, 'disk': os.path.join(B.IMG_DIR, n + '.img')}
                             for n in names],
            'bench_kernel': B.KERNEL, 'bench_initrd': B.INITRD}


def _batch_result(doc):
    return doc['plays'][0]['tasks'][0]['hosts']['localhost']


def guide_loop():
    return B.run_cmd(['bash', os.path.join(B.BENCH, 'guide_loop.sh'), B.IMG_DIR, B.KERNEL,
                      B.INITRD] + GUESTS)[0]


def guide_parallel():
    dt, proc = B.run_cmd(['bash', os.path.join(B.BENCH, 'guide_parallel.sh'), B.IMG_DIR,
                          B.KERNEL, B.INITRD] + GUESTS)
    failed = int(re.search(r'^failed (\d+)$', proc.stdout, re.M).group(1))
    errors = [line for line in proc.stdout.splitlines() if line.startswith('error ')]
    return dt, failed, errors


def libvirt_threads(names, workers):
    """Floor (d2): what libvirt_floor does, from a pool of `workers` threads over one
    connection (libvirt-python releases the GIL in each call)."""
    c = B.conn()
    t0, p0 = time.perf_counter(), time.process_time()

    def one(n):
        path = os.path.join(B.IMG_DIR, n + '.img')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(fd, B.GIB)
        os.close(fd)
        dom = c.defineXML(B.FLOOR_XML.format(name=n, kernel=B.KERNEL, initrd=B.INITRD, disk=path))
        dom.create()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(one, names))
    return time.perf_counter() - t0, time.process_time() - p0


def batch_payload(names, state='running', tag='batch-rerun'):
    g = guest_vars(names)
    return B.make_payload('kvmops.hypervisor.virt_install_domains', {
        'defaults': {'virt_type': 'qemu', 'memory': 256, 'vcpus': 1, 'os_variant': 'generic',
                     'networks': [{'network': 'default'}],
                     'graphics': {'type': 'vnc', 'listen': '127.0.0.1'},
                     'kernel': B.KERNEL, 'initrd': B.INITRD, 'cmdline': 'console=ttyS0',
                     'state': state},
        'guests': [{'name': x['name'],
                    'disks': [{'path': x['disk'], 'size': 1, 'format': 'raw', 'sparse': True}]}
                   for x in g['bench_guests']]}, tag)


def single_payload(name):
    return B.make_payload('kvmops.hypervisor.virt_install_domain', {
        'name': name, 'virt_type': 'qemu', 'memory': 256, 'vcpus': 1, 'os_variant': 'generic',
        'disks': [{'path': os.path.join(B.IMG_DIR, name + '.img'), 'size': 1, 'format': 'raw',
                   'sparse': True}],
        'networks': [{'network': 'default'}], 'graphics': {'type': 'vnc', 'listen': '127.0.0.1'},
        'kernel': B.KERNEL, 'initrd': B.INITRD, 'cmdline': 'console=ttyS0'}, 'single-rerun')


def imports_of(payload):
    """Which collection module_utils a payload run imports (python -X importtime)."""
    proc = subprocess.run([B.TARGET_PYTHON, '-X', 'importtime', payload],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300, check=False)
    mods = set()
    for line in proc.stderr.splitlines():
        m = re.search(r'\|\s*(ansible_collections\.kvmops\.hypervisor\.plugins\.module_utils\.\S+)',
                      line)
        if m:
            mods.add(m.group(1).split('module_utils.', 1)[1])
    return sorted(mods)


def case7(args):
    vars_file = B.write_vars('guests', guest_vars())
    workers = default_parallel()
    tools = ['kvmops_batch', 'guide_loop', 'guide_parallel', 'libvirt_floor', 'libvirt_threads']
    if os.environ.get('BENCH_CASE7_LOOP', '1') == '1':  # ours as a loop, for reference
        tools.append('kvmops_loop')
    rerun_tools = ['kvmops_batch', 'noop']
    times = {t: [] for t in tools}
    cpu = {t: [] for t in tools}
    changed = {t: [] for t in tools}
    rerun = {t: [] for t in rerun_tools}
    rerun_changed = {t: [] for t in rerun_tools}
    e_failures, e_errors, verify = [], [], {t: [] for t in tools}
    own = {'batch_10_guests': [], 'single_1_guest': []}
    payloads = {}
    imports = {}
    load = {'start': B.loadavg()}
    for rep in range(args.reps + 1):
        warm = rep == 0
        for tool in rotate(tools, rep):
            B.cleanup()
            time.sleep(1.0)
            n = len(GUESTS)
            if tool == 'guide_loop':
                dt = guide_loop()
            elif tool == 'guide_parallel':
                dt, failed, errors = guide_parallel()
                n = len(GUESTS) - failed
                if not warm:
                    e_failures.append(failed)
                    e_errors.extend(errors)
            elif tool == 'libvirt_floor':
                dt, B.LAST_CPU[0] = B.libvirt_floor(GUESTS)
            elif tool == 'libvirt_threads':
                dt, B.LAST_CPU[0] = libvirt_threads(GUESTS, workers)
            elif tool == 'kvmops_loop':
                dt, counts, _doc = B.run_playbook('create_kvmops.yml', vars_file)
                n = counts['changed_items']
            else:
                dt, counts, doc = B.run_playbook('create_kvmops_batch.yml', vars_file)
                n = _batch_result(doc)['summary']['changed']
            B.log('case7 rep %d%s %-16s %.2fs (tool CPU %.2fs) changed=%s' % (
                rep, ' (warm-up)' if warm else '', tool, dt, B.LAST_CPU[0], n))
            if tool != 'guide_parallel':
                verify[tool].extend(B.verify_guests(GUESTS))
            if not warm:
                times[tool].append(dt)
                cpu[tool].append(B.LAST_CPU[0])
                changed[tool].append(n)
            if tool == 'kvmops_batch':
                if not payloads:
                    payloads['batch_10_guests'] = batch_payload(GUESTS)
                    payloads['single_1_guest'] = single_payload(GUESTS[0])
                    imports = {k: imports_of(p) for k, p in payloads.items()}
                for pk in rotate(sorted(payloads), rep):
                    dtp, res = B.run_payload(payloads[pk])
                    if not warm:
                        own[pk].append(dtp)
                for rt in rotate(rerun_tools, rep):
                    if rt == 'kvmops_batch':
                        dt2, counts, doc = B.run_playbook('create_kvmops_batch.yml', vars_file)
                        n2 = _batch_result(doc)['summary']['changed']
                    else:
                        dt2, counts, _doc = B.run_playbook('noop.yml', vars_file)
                        n2 = counts['changed_items']
                    B.log('case7 re-run rep %d%s %-12s %.2fs changed=%s' % (
                        rep, ' (warm-up)' if warm else '', rt, dt2, n2))
                    if not warm:
                        rerun[rt].append(dt2)
                        rerun_changed[rt].append(n2)
        B.cleanup()
    load['end'] = B.loadavg()
    B.save_raw(7, {'times': {t: B.summary(v) for t, v in times.items()},
                   'tool_cpu': {t: B.summary(v) for t, v in cpu.items()},
                   'changed': changed, 'rerun': {t: B.summary(v) for t, v in rerun.items()},
                   'rerun_changed': rerun_changed, 'e_failures': e_failures,
                   'e_errors': e_errors[:20], 'verify_problems': verify,
                   'own_time': {k: B.summary(v) for k, v in own.items()},
                   'imports': imports, 'workers': workers, 'load': load, 'reps': args.reps})


def install_vars(names):
    return {
        'bench_install_defaults': {
            'virt_type': 'qemu', 'memory': 256, 'os_variant': 'linux', 'networks': [],
            'graphics': {'type': 'none'}, 'wait': 600,
            'install': {'location': TREE, 'extra_args': INSTALLER_ARGS,
                        'cache_dir': os.path.join(B.IMG_DIR, 'cache')}},
        'bench_install_guests': [
            {'name': n, 'serial': os.path.join(B.IMG_DIR, n + '.log'),
             'disks': [{'path': os.path.join(B.IMG_DIR, n + '.img'), 'size': 0.02}]}
            for n in names]}


def verify_installed(names):
    problems = []
    c = B.conn()
    for n in names:
        try:
            dom = c.lookupByName(n)
        except Exception:  # pylint: disable=broad-except
            problems.append('%s: missing' % n)
            continue
        if not dom.isActive():
            problems.append('%s: not running' % n)
        if '<kernel>' in dom.XMLDesc(0):
            problems.append('%s: still the installer' % n)
        with open(os.path.join(B.IMG_DIR, n + '.img'), 'rb') as f:
            if not f.read(64).startswith(b'KVMOPS-INSTALLED '):
                problems.append('%s: no install marker on its disk' % n)
    return problems


def case8(args):
    names = GUESTS[:4]
    vars_file = B.write_vars('installs', install_vars(names))
    tools = ['kvmops_batch', 'kvmops_loop']
    times = {t: [] for t in tools}
    verify = {t: [] for t in tools}
    runs = []
    load = {'start': B.loadavg()}
    for rep in range(args.reps + 1):
        warm = rep == 0
        for tool in rotate(tools, rep):
            B.cleanup()
            time.sleep(1.0)
            book = 'install_kvmops_batch.yml' if tool == 'kvmops_batch' else 'install_kvmops_loop.yml'
            dt, counts, _doc = B.run_playbook(book, vars_file, timeout=1800)
            problems = verify_installed(names)
            verify[tool].extend(problems)
            B.log('case8 rep %d%s %-12s %.2fs problems=%s' % (
                rep, ' (warm-up)' if warm else '', tool, dt, problems[:3]))
            runs.append({'rep': rep, 'tool': tool, 'seconds': round(dt, 3),
                         'problems': problems})
            # A run whose guests did not all install (an installer that hung) is not a time.
            if not warm and not problems:
                times[tool].append(dt)
        B.cleanup()
    load['end'] = B.loadavg()
    B.save_raw(8, {'times': {t: B.summary(v) for t, v in times.items()}, 'verify_problems': verify,
                   'runs': runs,
                   'guests': len(names), 'load': load, 'reps': args.reps})


def peak_rss_kib(payload):
    proc = subprocess.run(['/usr/bin/time', '-f', 'KVMOPS-RSS %M', B.TARGET_PYTHON, payload],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600, check=False)
    m = re.search(r'KVMOPS-RSS (\d+)', proc.stderr)
    res = json.loads(proc.stdout)
    if res.get('failed'):
        raise B.BenchError('payload failed: %s' % str(res.get('msg'))[:1000])
    return int(m.group(1)), res


def case9(args):
    names = ['%sm%02d' % (B.PREFIX, i) for i in range(1, 51)]
    out = {'rss_kib': {'batch_50_defined': [], 'batch_50_rerun': [], 'single_1_defined': []},
           'load': {'start': B.loadavg()}, 'reps': args.reps}
    # make_payload runs the module once (that is how Ansible leaves the payload behind):
    # clean up after it, so every measured run starts from nothing.
    B.cleanup()
    p50 = batch_payload(names, state='present', tag='batch-50')
    B.cleanup()
    p1 = B.make_payload('kvmops.hypervisor.virt_install_domain', {
        'name': names[0], 'state': 'present', 'virt_type': 'qemu', 'memory': 256,
        'os_variant': 'generic', 'kernel': B.KERNEL, 'initrd': B.INITRD,
        'disks': [{'path': os.path.join(B.IMG_DIR, names[0] + '.img'), 'size': 1}],
        'networks': [{'network': 'default'}],
        'graphics': {'type': 'vnc', 'listen': '127.0.0.1'}}, 'single-1')
    for rep in range(args.reps + 1):
        B.cleanup()
        rss, res = peak_rss_kib(p50)
        assert res['summary']['changed'] == 50, res['summary']
        rss2, res2 = peak_rss_kib(p50)
        assert res2['summary']['changed'] == 0, res2['summary']
        B.cleanup()
        rss1, _res = peak_rss_kib(p1)
        B.log('case9 rep %d peak RSS: 50 guests %d KiB (re-run %d KiB), one guest %d KiB'
              % (rep, rss, rss2, rss1))
        if rep:
            out['rss_kib']['batch_50_defined'].append(rss)
            out['rss_kib']['batch_50_rerun'].append(rss2)
            out['rss_kib']['single_1_defined'].append(rss1)
    B.cleanup()
    out['load']['end'] = B.loadavg()
    out['rss_kib'] = {k: B.summary(v) for k, v in out['rss_kib'].items()}
    B.save_raw(9, out)
