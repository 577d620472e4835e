# -*- coding: utf-8 -*-
"""Case sitecost (issue 33): what a nightly site.yml costs on a converged host, per task.

`BENCH_CASES=sitecost bench/run.sh` (not in the default set). For 1 and for 10 guests
(BENCH_SITE_GUESTS, default "1 10"; the first is the demo guest installed from the tiny tree,
the others are defined and not started, booting the tiny kernel directly), after one first
converge: the idempotent re-run, `--check --diff` of the same, and a one-task ping playbook
(ansible-playbook's fixed cost), BENCH_SITE_REPS times each (default 3, order rotating).
Each run is timed (wall) and its CPU seconds counted (user + system of ansible-playbook and
every child: workers and module processes, which hardly depends on other load), with task
counts and, through bench/callback_plugins/task_cpu.py, the CPU seconds of every task.

qemu.conf: the play's vnc_listen edits a copy (kvm_host_qemu_conf) that already says
vnc_listen = "127.0.0.1", so no run restarts libvirtd and a shared test-bed lock is enough.
Names: BENCH_PREFIX + 'sc-...' (pool, guests, /var/lib/libvirt/images/<prefix>sc), removed at
the end. Writes bench/.work/raw/sitecost.json and its section of bench/results.md.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import benchlib as B

NAME = B.PREFIX + 'sc'
SITE_DIR = os.path.join(B.IMAGE_ROOT, NAME)
PORT = int(os.environ.get('BENCH_SITECOST_PORT', '18192'))
QEMU_CONF = '/etc/libvirt/qemu.conf'
BOOT_CACHE = '/var/lib/libvirt/boot/kvmops'
CALLBACKS = os.path.join(B.BENCH, 'callback_plugins')
CONTROLLER_ONLY = {'set_fact', 'debug', 'assert', 'fail', 'include_vars', 'include_tasks',
                   'import_tasks', 'meta', 'validate_argument_spec', 'add_host', 'include_role'}


def _listdir(path):
    try:
        return set(os.listdir(path))
    except OSError:
        return set()


def guests_list(count):
    """The demo guest (installed from the tree) and count - 1 guests defined, not started."""
    demo = {'name': NAME + '-g01', 'memory': 256, 'vcpus': 1, 'os_variant': 'linux',
            'disks': [{'path': '%s/%s-g01.img' % (SITE_DIR, NAME), 'size': 1, 'format': 'raw'}],
            'networks': [{'network': 'default'}], 'graphics': {'type': 'vnc'},
            'serial': '%s/%s-g01-serial.log' % (SITE_DIR, NAME),
            'install': {'location': 'http://127.0.0.1:%d/' % PORT,
                        'extra_args': 'console=ttyS0 kvmops.dhcp=1'}}
    out = [demo]
    for i in range(2, count + 1):
        name = '%s-g%02d' % (NAME, i)
        out.append({'name': name, 'state': 'present', 'memory': 256, 'vcpus': 1,
                    'os_variant': 'linux', 'kernel': B.KERNEL, 'initrd': B.INITRD,
                    'cmdline': 'console=ttyS0',
                    'disks': [{'path': '%s/%s.img' % (SITE_DIR, name), 'size': 1,
                               'format': 'raw'}],
                    'networks': [{'network': 'default'}], 'graphics': {'type': 'vnc'}})
    return out


def reset(boot_cache_before):
    B.reconnect()
    B.cleanup(recreate_dir=False)
    shutil.rmtree(SITE_DIR, ignore_errors=True)
    # BENCH_SITECOST_CLEAN_CACHE=0 beside other users of the cache (whose new entries would
    # look like ours): the install tree's entry then stays.
    for entry in (_listdir(BOOT_CACHE) - boot_cache_before
                  if os.environ.get('BENCH_SITECOST_CLEAN_CACHE', '1') != '0' else ()):
        shutil.rmtree(os.path.join(BOOT_CACHE, entry), ignore_errors=True)
    if os.path.exists('/usr/sbin/semanage'):
        out = subprocess.run(['semanage', 'fcontext', '-l', '-C'], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, universal_newlines=True,
                             check=False).stdout
        for line in out.splitlines():
            if NAME in line and line.split():
                subprocess.run(['semanage', 'fcontext', '-d', line.split()[0]],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def per_task(path):
    rows = []
    with open(path) as f:
        for line in f:
            rows.append(json.loads(line))
    total = rows.pop() if rows and rows[-1].get('task') == '__total__' else None
    return rows, total


def task_summary(rows):
    ran = [r for r in rows if set(r['status']) - {'skipped'}]
    modules = [r for r in ran if r['action'].split('.')[-1] not in CONTROLLER_ONLY]
    skipped = [r for r in rows if r['status'] and set(r['status']) == {'skipped'}]
    return {'ran': len(ran), 'module_tasks': len(modules), 'skipped': len(skipped),
            'module_cpu': round(sum(r['cpu'] for r in modules), 3),
            'skipped_cpu': round(sum(r['cpu'] for r in skipped), 3)}


def timed(kind, site, ping, extra, inventory, tag):
    cpu_file = os.path.join(B.WORK, 'sitecost-%s.cpu' % tag)
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'task_cpu', 'ANSIBLE_CALLBACK_PLUGINS': CALLBACKS,
           'TASK_CPU_FILE': cpu_file}
    if kind == 'ping':
        dt, counts, _doc = B.run_playbook(ping, inventory=inventory, env=env)
    else:
        dt, counts, _doc = B.run_playbook(site, extra, inventory=inventory, env=env,
                                          check=kind == 'check_diff', diff=kind == 'check_diff')
    cpu = B.LAST_CPU[0]
    rows, _total = per_task(cpu_file)
    return {'seconds': dt, 'cpu': cpu, 'counts': counts, 'tasks': rows,
            'summary': task_summary(rows)}


def run(reps, site, inventory, counts):
    tree = os.path.join(B.TINY, 'trees', 'rhel')
    conf = os.path.join(B.WORK, NAME + '-qemu.conf')
    os.makedirs(B.WORK, exist_ok=True)
    with open(QEMU_CONF) as f:
        text = f.read()
    with open(conf, 'w') as f:
        f.write(text.rstrip('\n') + '\nvnc_listen = "127.0.0.1"\n')
    ping = os.path.join(B.PLAYBOOKS, 'ping_once.yml')
    boot_cache = _listdir(BOOT_CACHE)
    server = subprocess.Popen([sys.executable, '-m', 'http.server', '--bind', '127.0.0.1',
                               '--directory', tree, str(PORT)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    load = {'start': B.loadavg()}
    out = {'available': True, 'reps': reps, 'sizes': {}, 'load': load,
           'site': os.path.relpath(site, B.REPO), 'inventory': os.path.relpath(inventory, B.REPO)}
    try:
        time.sleep(0.5)
        if server.poll() is not None:
            raise B.BenchError('cannot serve the install tree on 127.0.0.1:%d' % PORT)
        for count in counts:
            reset(boot_cache)
            extra = B.write_vars('sitecost-%d' % count, {
                'image_storage_dir': SITE_DIR, 'image_storage_pool_name': NAME,
                'demo_tree_port': PORT, 'kvm_host_qemu_conf': conf,
                'guests_list': guests_list(count)})
            first = timed('first', site, ping, extra, inventory, '%d-first' % count)
            B.log('sitecost %d guests: first converge %.1fs cpu %.1fs (ok %d, changed %d)' % (
                count, first['seconds'], first['cpu'], first['counts']['stats']['localhost']['ok'],
                first['counts']['stats']['localhost']['changed']))
            runs = {'rerun': [], 'check_diff': [], 'ping': []}
            kinds = ['rerun', 'check_diff', 'ping']
            for rep in range(reps):
                for kind in kinds[rep % 3:] + kinds[:rep % 3]:
                    r = timed(kind, site, ping, extra, inventory, '%d-%s-%d' % (count, kind, rep))
                    runs[kind].append(r)
                    B.log('sitecost %d guests rep %d %s: %.1fs cpu %.2fs ok %d changed %d '
                          'skipped %d' % (count, rep, kind, r['seconds'], r['cpu'],
                                          r['counts']['stats']['localhost']['ok'],
                                          r['counts']['stats']['localhost']['changed'],
                                          r['counts']['stats']['localhost']['skipped']))
            out['sizes'][str(count)] = {'first': first, 'runs': runs}
    finally:
        server.terminate()
        server.wait()
        reset(boot_cache)
        os.unlink(conf)
    load['end'] = B.loadavg()
    return out


def _med(runs, key):
    return statistics.median(r[key] for r in runs) if runs else None


def section(data):
    lines = ['<!-- section:sitecost -->', '## Case sitecost: site.yml re-run and --check --diff '
             'on a converged host (issue 33)\n',
             'Measured by `bench/sitecost.py` (`BENCH_CASES=sitecost bench/run.sh`) on %s UTC, %d '
             'repetition(s) after one first converge per size; load average at start / end %s / '
             '%s. CPU = user + system seconds of ansible-playbook and all its children (workers, '
             'module processes); wall times depend on other load, CPU seconds hardly do.\n' % (
                 time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()), data['reps'],
                 ' '.join(str(x) for x in data['load']['start']),
                 ' '.join(str(x) for x in data['load']['end'])),
             '| guests | run | wall median | CPU median | x ping (wall) | x ping (CPU) | x re-run '
             '(wall) | tasks ok / changed / skipped | module tasks |',
             '|---:|---|---:|---:|---:|---:|---:|---|---:|']
    for count, d in sorted(data['sizes'].items(), key=lambda kv: int(kv[0])):
        runs = d['runs']
        pw, pc = _med(runs['ping'], 'seconds'), _med(runs['ping'], 'cpu')
        rw = _med(runs['rerun'], 'seconds')
        for kind, label in (('rerun', 're-run'), ('check_diff', '--check --diff'),
                            ('ping', 'one-task ping')):
            if not runs[kind]:
                continue
            w, c = _med(runs[kind], 'seconds'), _med(runs[kind], 'cpu')
            st = runs[kind][-1]['counts']['stats']['localhost']
            lines.append('| %s | %s | %.2f s | %.2f s | %.1fx | %.1fx | %.2fx | %d / %d / %d | %d |'
                         % (count, label, w, c, w / pw, c / pc, w / rw, st['ok'], st['changed'],
                            st['skipped'], runs[kind][-1]['summary']['module_tasks']))
    lines.append('\nGoals (issue 33): re-run at most 6x the ping playbook; `--check --diff` at most '
                 '1.2x the re-run.\n')
    for count, d in sorted(data['sizes'].items(), key=lambda kv: int(kv[0])):
        reruns = d['runs']['rerun']
        if not reruns:
            continue
        lines.append('CPU seconds per task of the re-run with %s guest(s) (median over the '
                     'repetitions; skipped tasks left out):\n' % count)
        lines.append('| task | module | CPU s |')
        lines.append('|---|---|---:|')
        n = min(len(r['tasks']) for r in reruns)
        for i in range(n):
            row = reruns[0]['tasks'][i]
            if set(row['status']) == {'skipped'} or not row['status']:
                continue
            cpu = statistics.median(r['tasks'][i]['cpu'] for r in reruns)
            lines.append('| %s | %s | %.2f |' % (row['task'].replace('|', '/'), row['action'], cpu))
        lines.append('')
    lines.append('<!-- /section:sitecost -->')
    return '\n'.join(lines)


def main():
    reps = int(os.environ.get('BENCH_SITE_REPS', '3'))
    counts = [int(c) for c in os.environ.get('BENCH_SITE_GUESTS', '1 10').split()]
    site = os.path.join(B.REPO, 'playbooks', 'site.yml')
    inventory = os.path.join(B.REPO, 'inventories', 'demo')
    data = run(reps, site, inventory, counts)
    B.save_raw('sitecost', data)
    if os.environ.get('BENCH_REPORT', '1') != '0':
        B.write_section('sitecost', section(data))
    print(section(data))


if __name__ == '__main__':
    main()
