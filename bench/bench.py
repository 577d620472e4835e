# -*- coding: utf-8 -*-
"""kvmops.hypervisor benchmarks against the guide's virt-install loop and community.libvirt.

Run through bench/run.sh (`make bench`), which takes the test-bed lock. Each case writes its
raw figures to bench/.work/raw/case<N>.json; bench/report.py turns them into
bench/results.md, bench/results.json and bench/ratios.png. See bench/README.md.

Usage: bench.py meta | case1 | case3 | case4 | case5 | case6 | case7 | case8 | case9 | case10  [--reps N]
(cases 7-9, many guests at once, are in bench/many.py.)
(case1 also measures case 2, the re-run, on the guests it has just made.)
"""
import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib as B  # noqa: E402

GUESTS = ['%sg%02d' % (B.PREFIX, i) for i in range(1, 11)]
KVMOPS_DOMAIN_MODULE = os.path.join(B.REPO, 'plugins', 'modules', 'virt_install_domain.py')
KVMOPS_FACTS_MODULE = os.path.join(B.REPO, 'plugins', 'modules', 'kvm_capability_facts.py')


def have(path):
    return os.path.exists(path)


def rotate(items, n):
    n %= len(items)
    return items[n:] + items[:n]


def guest_vars():
    return {
        'bench_guests': [{'name': n, 'disk': os.path.join(B.IMG_DIR, n + '.img')} for n in GUESTS],
        'bench_kernel': B.KERNEL,
        'bench_initrd': B.INITRD,
    }


def guide_loop(dry_run=False):
    env = dict(os.environ, BENCH_DRY_RUN='1' if dry_run else '0')
    return B.run_cmd(['bash', os.path.join(B.BENCH, 'guide_loop.sh'), B.IMG_DIR, B.KERNEL,
                      B.INITRD] + GUESTS, env=env)[0]


def settle():
    """After a clean-up, give libvirtd and the kernel a moment so runs start on a quiet host."""
    time.sleep(1.0)


# --- meta ------------------------------------------------------------------------------

def _first_line(cmd):
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=60, check=False).stdout
        return out.strip().splitlines()[0] if out.strip() else ''
    except (OSError, subprocess.SubprocessError):
        return 'unavailable'


def _collection_version(path):
    import json
    try:
        with open(os.path.join(path, 'MANIFEST.json')) as f:
            return json.load(f)['collection_info']['version']
    except (OSError, ValueError, KeyError):
        return 'unknown'


def meta(_args):
    c = B.conn()
    lib = c.getLibVersion()
    hv = c.getVersion()
    mem_kib = 0
    cpu_model = ''
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemTotal:'):
                mem_kib = int(line.split()[1])
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                cpu_model = line.split(':', 1)[1].strip()
                break
    distro = ''
    try:
        with open('/etc/os-release') as f:
            distro = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', f.read(), re.M)).get('PRETTY_NAME', '')
    except OSError:
        pass
    import ansible
    import ansible.release
    site = os.path.dirname(os.path.dirname(ansible.__file__))
    try:
        from importlib.metadata import version as pkg_version
        ansible_pkg = pkg_version('ansible')
    except Exception:  # pylint: disable=broad-except
        ansible_pkg = 'unknown'
    git = _first_line(['git', '-C', B.REPO, 'rev-parse', '--short', 'HEAD'])
    dirty = subprocess.run(['git', '-C', B.REPO, 'status', '--porcelain', '--', 'plugins', 'roles',
                            'playbooks'], stdout=subprocess.PIPE,
                           universal_newlines=True, check=False).stdout.strip()
    data = {
        'date_utc': time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()),
        'machine': {
            'cores': os.cpu_count(), 'cpu_model': cpu_model,
            'memory_gib': round(mem_kib / 1024.0 / 1024.0, 1), 'kernel': platform.release(),
            'distro': distro,
        },
        'versions': {
            'libvirt': '%d.%d.%d' % (lib // 1000000, lib // 1000 % 1000, lib % 1000),
            'qemu': '%d.%d.%d' % (hv // 1000000, hv // 1000 % 1000, hv % 1000),
            'qemu_binary': _first_line(['qemu-system-x86_64', '--version']),
            'virt_install': _first_line(['virt-install', '--version']),
            'ansible_core': ansible.release.__version__,
            'ansible_package': ansible_pkg,
            'community_libvirt': _collection_version(
                os.path.join(site, 'ansible_collections', 'community', 'libvirt')),
            'controller_python': platform.python_version(),
            'target_python': _first_line([B.TARGET_PYTHON, '--version']),
            'kvmops_commit': git + (' (+ uncommitted changes)' if dirty else ''),
        },
        'domain_type': 'qemu (TCG): /dev/kvm here cannot run guests',
        'other_running_domains_at_start': sorted(
            d.name() for d in c.listAllDomains()
            if d.isActive() and not d.name().startswith(B.PREFIX)),
    }
    B.save_raw('meta', data)
    B.log('meta: %s cores, %s GiB, libvirt %s, QEMU %s' % (
        data['machine']['cores'], data['machine']['memory_gib'], data['versions']['libvirt'],
        data['versions']['qemu']))


# --- cases 1 and 2 -------------------------------------------------------------------

def kvmops_create(vars_file, check=False):
    return B.run_playbook('create_kvmops.yml', vars_file, check=check)


def rerun_payloads(kvmops):
    """The AnsiballZ payloads of one re-run item (first guest), made while the guests exist."""
    g = guest_vars()['bench_guests'][0]
    out = {'ping': B.make_payload('ansible.builtin.ping', {'data': g['name']}, 'rerun-ping'),
           'community': B.make_payload('community.libvirt.virt_install', {
               'name': g['name'], 'virt_type': 'qemu', 'memory': 256, 'vcpus': 1,
               'osinfo': {'name': 'generic', 'detect': False},
               'disks': [{'path': g['disk'], 'size': 1, 'format': 'raw', 'sparse': True}],
               'networks': [{'network': 'default'}],
               'graphics': {'type': 'vnc', 'listen': '127.0.0.1'},
               'boot': 'kernel=%s,initrd=%s,kernel_args=console=ttyS0' % (B.KERNEL, B.INITRD),
               'import': True}, 'rerun-community')}
    if kvmops:
        out['kvmops'] = B.make_payload('kvmops.hypervisor.virt_install_domain', {
            'name': g['name'], 'virt_type': 'qemu', 'memory': 256, 'vcpus': 1,
            'os_variant': 'generic',
            'disks': [{'path': g['disk'], 'size': 1, 'format': 'raw', 'sparse': True}],
            'networks': [{'network': 'default'}],
            'graphics': {'type': 'vnc', 'listen': '127.0.0.1'},
            'kernel': B.KERNEL, 'initrd': B.INITRD, 'cmdline': 'console=ttyS0'}, 'rerun-kvmops')
    return out


def case1(args):
    """Create and start 10 guests with each tool; then re-run on the same guests (case 2)."""
    vars_file = B.write_vars('guests', guest_vars())
    kvmops = have(KVMOPS_DOMAIN_MODULE)
    tools = ['guide_loop', 'community', 'noop', 'libvirt_floor'] + (['kvmops'] if kvmops else [])
    host_tool = 'kvmops' if kvmops else 'community'
    rerun_tools = (['kvmops'] if kvmops else []) + ['community', 'noop']
    c1 = {t: [] for t in tools}
    c2 = {t: [] for t in rerun_tools}
    c1_changed = {t: [] for t in tools}
    c1_cpu = {t: [] for t in tools}
    c2_cpu = {t: [] for t in rerun_tools}
    c2_changed = {t: [] for t in rerun_tools}
    verify = {t: [] for t in tools if t != 'noop'}
    guest_cpu = {t: [] for t in tools if t != 'noop'}
    quiet_wait = []
    payloads = {}
    own = {k: [] for k in (['kvmops'] if kvmops else []) + ['community', 'ping']}
    own_changed = []
    load = {'start': B.loadavg()}
    for rep in range(args.reps + 1):
        warm = rep == 0
        for tool in rotate(tools, rep):
            B.cleanup()
            settle()
            if tool == 'guide_loop':
                dt, changed = guide_loop(), len(GUESTS)
            elif tool == 'noop':
                dt, counts, _doc = B.run_playbook('noop.yml', vars_file)
                changed = counts['changed_items']
            elif tool == 'libvirt_floor':
                dt, B.LAST_CPU[0] = B.libvirt_floor(GUESTS)
                changed = len(GUESTS)
            elif tool == 'community':
                dt, counts, _doc = B.run_playbook('create_community.yml', vars_file)
                changed = counts['changed_items']
            else:
                dt, counts, _doc = kvmops_create(vars_file)
                changed = counts['changed_items']
            cpu = B.LAST_CPU[0]
            B.log('case1 rep %d%s %-10s %.2fs (tool CPU %.2fs) changed=%s' % (
                rep, ' (warm-up)' if warm else '', tool, dt, cpu, changed))
            if tool != 'noop':
                if not warm:
                    guest_cpu[tool].append(B.guests_cpu_seconds(GUESTS))
                problems = B.verify_guests(GUESTS)
                if problems:
                    B.log('case1 %s made guests that differ: %s' % (tool, problems[:5]))
                verify[tool].extend(problems)
            if not warm:
                c1[tool].append(dt)
                c1_cpu[tool].append(cpu)
                c1_changed[tool].append(changed)
            if tool == host_tool:
                quiet_wait.append(B.wait_quiet(GUESTS))
                if not payloads:
                    payloads.update(rerun_payloads(kvmops))
                for pk in rotate(sorted(payloads), rep):
                    dtp, res = B.run_payload(payloads[pk])
                    if not warm:
                        own[pk].append(dtp)
                        if res.get('changed'):
                            own_changed.append(pk)
                for rt in rotate(rerun_tools, rep):
                    if rt == 'kvmops':
                        dt2, counts, _doc = kvmops_create(vars_file)
                    elif rt == 'community':
                        dt2, counts, _doc = B.run_playbook('create_community.yml', vars_file)
                    else:
                        dt2, counts, _doc = B.run_playbook('noop.yml', vars_file)
                    B.log('case2 rep %d%s %-10s %.2fs changed=%s' % (
                        rep, ' (warm-up)' if warm else '', rt, dt2, counts['changed_items']))
                    if not warm:
                        c2[rt].append(dt2)
                        c2_cpu[rt].append(B.LAST_CPU[0])
                        c2_changed[rt].append(counts['changed_items'])
                if kvmops:
                    problems = B.verify_guests(GUESTS)
                    verify['kvmops'].extend('after re-run: ' + p for p in problems)
        B.cleanup()
    B.cleanup(recreate_dir=False)
    load['end'] = B.loadavg()
    B.save_raw(1, {'times': {t: B.summary(v) for t, v in c1.items()}, 'changed': c1_changed,
                   'tool_cpu': {t: B.summary(v) for t, v in c1_cpu.items()},
                   'guest_cpu_seconds_at_end': {t: B.summary(v) for t, v in guest_cpu.items()},
                   'verify_problems': verify, 'load': load, 'reps': args.reps,
                   'kvmops_available': kvmops})
    B.save_raw(2, {'times': {t: B.summary(v) for t, v in c2.items()}, 'changed': c2_changed,
                   'tool_cpu': {t: B.summary(v) for t, v in c2_cpu.items()},
                   'guests_made_by': host_tool, 'quiet_wait': B.summary(quiet_wait),
                   'own_time_one_guest': {k: B.summary(v) for k, v in own.items()},
                   'own_time_changed': own_changed,
                   'load': load, 'reps': args.reps, 'kvmops_available': kvmops})


# --- case 3 --------------------------------------------------------------------------

def case3(args):
    """Check mode on a clean host: the lists before and after must be identical."""
    vars_file = B.write_vars('guests', guest_vars())
    kvmops = have(KVMOPS_DOMAIN_MODULE)
    tools = (['kvmops'] if kvmops else []) + ['community', 'guide_dry_run']
    times = {t: [] for t in tools}
    effects = {t: [] for t in tools}
    predicted = {t: [] for t in tools}
    examples = {}
    load = {'start': B.loadavg()}
    for rep in range(args.reps + 1):
        warm = rep == 0
        for tool in rotate(tools, rep):
            B.cleanup()
            settle()
            before = B.snapshot()
            if tool == 'kvmops':
                dt, counts, _doc = kvmops_create(vars_file, check=True)
                pred = counts['changed_items']
            elif tool == 'community':
                dt, counts, _doc = B.run_playbook('create_community.yml', vars_file, check=True)
                pred = counts['changed_items']
            else:
                dt, pred = guide_loop(dry_run=True), None
            after = B.snapshot()
            diff = B.snapshot_diff(before, after)
            n = B.side_effects(diff)
            B.log('case3 rep %d%s %-13s %.2fs predicted_changes=%s side_effects=%d' % (
                rep, ' (warm-up)' if warm else '', tool, dt, pred, n))
            if n and tool not in examples:
                examples[tool] = {k: v for k, v in diff.items() if v['added'] or v['removed']}
            # every repetition counts for the side-effect proof, the warm-up too
            effects[tool].append({'rep': rep, 'side_effects': n, 'diff': diff})
            if not warm:
                times[tool].append(dt)
                predicted[tool].append(pred)
    B.cleanup(recreate_dir=False)
    load['end'] = B.loadavg()
    B.save_raw(3, {'times': {t: B.summary(v) for t, v in times.items()}, 'effects': effects,
                   'examples': examples, 'predicted_changes': predicted, 'load': load,
                   'reps': args.reps, 'kvmops_available': kvmops})


# --- case 4 --------------------------------------------------------------------------

def _vhv_summary(text):
    res = re.findall(r':\s*(PASS|WARN|FAIL)\b', text)
    lines = [re.sub(r'\s+', ' ', ln.strip()) for ln in text.splitlines()
             if re.search(r':\s*(WARN|FAIL)\b', ln)]
    return {'PASS': res.count('PASS'), 'WARN': res.count('WARN'), 'FAIL': res.count('FAIL'),
            'not_pass': lines}


def case4(args):
    kvmops = have(KVMOPS_FACTS_MODULE)
    payloads = {'setup': B.make_payload('ansible.builtin.setup', {}, 'setup'),
                'ping': B.make_payload('ansible.builtin.ping', {}, 'ping')}
    if kvmops:
        payloads['kvmops'] = B.make_payload('kvmops.hypervisor.kvm_capability_facts', {},
                                            'kvm_capability_facts')
    own = {k: [] for k in payloads}
    playbooks = {'setup': 'facts_setup.yml', 'ping': 'ping_once.yml'}
    if kvmops:
        playbooks['kvmops'] = 'facts_kvmops.yml'
    full = {k: [] for k in playbooks}
    vhv = []
    vhv_out = ''
    facts = None
    load = {'start': B.loadavg()}
    for rep in range(args.reps + 1):
        warm = rep == 0
        dt, proc = B.run_cmd(['virt-host-validate', 'qemu'], check=False)
        vhv_out = proc.stdout + proc.stderr
        vhv_rc = proc.returncode
        if not warm:
            vhv.append(dt)
        for k in rotate(sorted(payloads), rep):
            dt, result = B.run_payload(payloads[k])
            if k == 'kvmops':
                facts = result.get('ansible_facts', {}).get('kvm_capability')
            if not warm:
                own[k].append(dt)
        for k in rotate(sorted(playbooks), rep):
            dt, _counts, _doc = B.run_playbook(playbooks[k])
            if not warm:
                full[k].append(dt)
        last = {k: round(v[-1], 3) for k, v in own.items() if v}
        B.log('case4 rep %d%s vhv=%.2fs own=%s' % (
            rep, ' (warm-up)' if warm else '', vhv[-1] if vhv else 0, last))
    load['end'] = B.loadavg()
    fact_summary = None
    if facts:
        keys = ('domain_type', 'kvm_usable', 'virt_extension', 'virt_flag_count', 'reasons',
                'emulator')
        fact_summary = {k: facts.get(k) for k in keys}
        fact_summary['checks'] = [{'name': c.get('name'), 'result': c.get('result')}
                                  for c in facts.get('checks', [])]
    B.save_raw(4, {'own_time': {k: B.summary(v) for k, v in own.items()},
                   'playbook_time': {k: B.summary(v) for k, v in full.items()},
                   'virt_host_validate': B.summary(vhv), 'virt_host_validate_rc': vhv_rc,
                   'virt_host_validate_summary': _vhv_summary(vhv_out),
                   'kvm_capability': fact_summary, 'load': load, 'reps': args.reps,
                   'kvmops_available': kvmops})


# --- case 5 --------------------------------------------------------------------------

def disk_variants():
    """virt_install_domain arguments for a defined (not started) guest with one new disk."""
    base = os.path.join(B.IMG_DIR, B.PREFIX + 'base.img')
    common = {'state': 'present', 'virt_type': 'qemu', 'memory': 256, 'vcpus': 1,
              'kernel': B.KERNEL, 'initrd': B.INITRD, 'cmdline': 'console=ttyS0',
              'networks': [{'network': 'default'}], 'graphics': {'type': 'vnc', 'listen': '127.0.0.1'}}
    out = {}
    for tag, disk in (
            ('raw_1g', {'size': 1, 'format': 'raw', 'sparse': True}),
            ('raw_100g', {'size': 100, 'format': 'raw', 'sparse': True}),
            ('qcow2_clone', {'format': 'qcow2', 'backing_store': base})):
        name = B.PREFIX + 'disk-' + tag.replace('_', '-')
        ext = '.qcow2' if disk['format'] == 'qcow2' else '.img'
        args = dict(common, name=name,
                    disks=[dict(disk, path=os.path.join(B.IMG_DIR, name + ext))])
        out[tag] = args
    return base, out


def _remove_variant(args):
    c = B.conn()
    try:
        B.remove_domain(c.lookupByName(args['name']))
    except B.libvirt.libvirtError:
        pass
    for d in args['disks']:
        if os.path.exists(d['path']):
            os.unlink(d['path'])


def _storage_calls(variants):
    """The module's own disk-creation code alone (plan_disks + create_missing), in-process."""
    if B.COLLECTIONS_DIR not in sys.path:
        sys.path.insert(0, B.COLLECTIONS_DIR)
    # pylint: disable=import-outside-toplevel
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as dspec
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import storage as _storage

    def run_command(cmd):
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def make(tag):
        args = dict(variants[tag])
        disk = dict(args['disks'][0])
        root, ext = os.path.splitext(disk['path'])
        disk['path'] = root + '-storage-only' + ext
        spec = dspec.normalize({'name': args['name'], 'disks': [disk]})

        def call():
            # microseconds for raw images: the median of 15 calls makes one sample
            samples = []
            for _i in range(15):
                t0 = time.perf_counter()
                plans = _storage.plan_disks(spec['disks'])
                _storage.create_missing(plans, run_command=run_command,
                                        qemu_img='/usr/bin/qemu-img')
                samples.append(time.perf_counter() - t0)
                os.unlink(disk['path'])
            return statistics.median(samples)
        return call
    return {'kvmops_storage_' + tag: make(tag) for tag in variants}


def case5(args):
    kvmops = have(KVMOPS_DOMAIN_MODULE)
    B.cleanup()
    base, variants = disk_variants()
    B.run_cmd(['qemu-img', 'create', '-q', '-f', 'raw', base, '1G'])
    pool = B.PREFIX + 'pool'
    B.run_cmd(['virsh', '-q', '-c', B.URI, 'pool-create-as', pool, 'dir', '--target', B.IMG_DIR])
    payloads = {}
    if kvmops:
        for tag, a in variants.items():
            payloads[tag] = B.make_payload('kvmops.hypervisor.virt_install_domain', a, 'disk-' + tag)
            _remove_variant(a)

    def img(n):
        return os.path.join(B.IMG_DIR, B.PREFIX + 'x-' + n)
    floors = {
        'qemu_img_raw_1g': (['qemu-img', 'create', '-q', '-f', 'raw', img('r1.img'), '1G'], [img('r1.img')]),
        'qemu_img_raw_100g': (['qemu-img', 'create', '-q', '-f', 'raw', img('r100.img'), '100G'], [img('r100.img')]),
        'qemu_img_qcow2_clone': (['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw',
                                  img('c.qcow2')], [img('c.qcow2')]),
        'virsh_vol_raw_1g': (['virsh', '-q', '-c', B.URI, 'vol-create-as', pool, B.PREFIX + 'v1.img',
                              '1G', '--allocation', '0', '--format', 'raw'], ['vol:' + B.PREFIX + 'v1.img']),
        'virsh_vol_raw_100g': (['virsh', '-q', '-c', B.URI, 'vol-create-as', pool, B.PREFIX + 'v100.img',
                                '100G', '--allocation', '0', '--format', 'raw'], ['vol:' + B.PREFIX + 'v100.img']),
    }
    storage = _storage_calls(variants) if kvmops else {}
    times = {k: [] for k in list(payloads) + list(storage) + list(floors)}
    sizes = {}
    load = {'start': B.loadavg()}
    for rep in range(args.reps + 1):
        warm = rep == 0
        for tag in rotate(sorted(payloads), rep):
            dt, result = B.run_payload(payloads[tag])
            path = variants[tag]['disks'][0]['path']
            st = os.stat(path)
            sizes[tag] = {'apparent': st.st_size, 'allocated': st.st_blocks * 512,
                          'changed': bool(result.get('changed'))}
            _remove_variant(variants[tag])
            if not warm:
                times[tag].append(dt)
        for tag in rotate(sorted(storage), rep):
            dt = storage[tag]()
            if not warm:
                times[tag].append(dt)
        for tag in rotate(sorted(floors), rep):
            cmd, made = floors[tag]
            dt, _proc = B.run_cmd(cmd)
            for m in made:
                if m.startswith('vol:'):
                    B.run_cmd(['virsh', '-q', '-c', B.URI, 'vol-delete', m[4:], '--pool', pool])
                else:
                    os.unlink(m)
            if not warm:
                times[tag].append(dt)
        B.log('case5 rep %d%s %s' % (rep, ' (warm-up)' if warm else '',
                                     {k: round(v[-1], 3) for k, v in times.items() if v}))
    load['end'] = B.loadavg()
    B.cleanup(recreate_dir=False)
    B.save_raw(5, {'times': {k: B.summary(v) for k, v in times.items()}, 'sizes': sizes,
                   'variants': variants, 'load': load, 'reps': args.reps,
                   'kvmops_available': kvmops})


# --- case 6 --------------------------------------------------------------------------

def case6(args):
    site = os.path.join(B.REPO, 'playbooks', 'site.yml')
    inv = os.path.join(B.REPO, 'inventories', 'demo')
    if not (os.path.exists(site) and os.path.exists(inv)):
        B.save_raw(6, {'available': False,
                       'why': 'playbooks/site.yml and inventories/demo/ are not in the tree yet'})
        B.log('case6: site.yml or inventories/demo missing: not measurable yet')
        return
    import case6 as C6  # pylint: disable=import-outside-toplevel
    B.save_raw(6, C6.run(args.reps, site, inv))


def case10(args):
    """Cloud guests from task start to SSH-ready, one and three (not in the default set)."""
    import case10 as C10  # pylint: disable=import-outside-toplevel
    counts = tuple(int(c) for c in os.environ.get('BENCH_CLOUD_COUNTS', '1 3').split())
    B.save_raw(10, C10.run(args.reps, counts))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('what', choices=['meta', 'case1', 'case3', 'case4', 'case5', 'case6',
                                         'case7', 'case8', 'case9', 'case10', 'cleanup'])
    parser.add_argument('--reps', type=int, default=int(os.environ.get('BENCH_REPS', '5')),
                        help='measured repetitions after one warm-up (default 5)')
    args = parser.parse_args()
    if args.what == 'cleanup':
        B.cleanup(recreate_dir=False)
        return
    t0 = time.monotonic()
    try:
        if args.what in ('case7', 'case8', 'case9'):
            import many  # pylint: disable=import-outside-toplevel
            getattr(many, args.what)(args)
        else:
            globals()[args.what](args)
    except Exception as exc:  # pylint: disable=broad-except
        # keep the reason for the report; the other cases still run
        case = int(args.what[4:]) if args.what.startswith('case') else args.what
        B.save_raw(case, {'error': '%s: %s' % (type(exc).__name__, str(exc)[:3000]),
                          'reps': args.reps})
        if case == 1:
            B.save_raw(2, {'error': 'case 1 failed, so its re-run was not measured',
                           'reps': args.reps})
        B.log('%s FAILED: %s' % (args.what, exc))
        B.cleanup(recreate_dir=False)
        sys.exit(1)
    finally:
        if args.what != 'meta':
            B.cleanup(recreate_dir=False)
    B.log('%s done in %.0fs' % (args.what, time.monotonic() - t0))


if __name__ == '__main__':
    main()
