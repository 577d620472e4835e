"""Stress the host's libvirtd the way issue 25 crashed it, and count its deaths.

    .venv/bin/python tools/stress_daemon.py [--rounds N] [--seconds S] [--containers K] [--guests G]
                           [--parallel P] [--json OUT]

Each round runs the ten-guest batch of test_ten_guests_in_one_run through the module
(virt_install_domains: G tiny guests created and started, P at a time, over one connection),
then removes them (state absent, remove_storage). Meanwhile K slots start and remove
privileged systemd podman containers of the `hypervisor` recipe in a loop (their systemd
creates and removes cgroups in this host's hierarchies while libvirtd sets up the guests'
cgroups). After every module run the daemon is checked (tests/support/daemon_watch.py): a
death is counted and described (signal, kernel segfault line, core file), libvirtd is started
again and what the round made is removed. Stops after N rounds or S seconds, whichever first.

Run it through `make stress-daemon` (testbed/with_testbed_lock.sh exclusive: it may kill the
daemon everyone shares). For the core files it puts `ulimit -c unlimited` into
/etc/default/libvirtd (sourced by Debian's sysv init script; kept) and kernel.core_pattern to
/var/crash/core.%e.%p.%t while it runs (restored afterwards).
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests'))

import libvirt  # noqa: E402

from support import daemon_watch, faults, paths  # noqa: E402
from support.ansible_run import run_module  # noqa: E402
from support.libvirt_helpers import leftovers, remove_everything_named  # noqa: E402

IMAGE_ROOT = '/var/lib/libvirt/images/kvmops-tests'
DEFAULTS_FILE = '/etc/default/libvirtd'
CORE_DIR = '/var/crash'
CORE_PATTERN = CORE_DIR + '/core.%e.%p.%t'
MARK = '# kvmops tools/stress_daemon.py: core dumps of libvirtd (issue 25)'


STRESS_LOG = os.path.join(REPO, 'tests', 'reliability', 'stress-daemon.jsonl')


def libvirt_version():
    v = libvirt.getVersion()
    return '%d.%d.%d' % (v // 1000000, v // 1000 % 1000, v % 1000)


def cgroup_layout():
    """'v1 (hybrid)' when controllers sit on v1 hierarchies, 'v2' when only cgroup2."""
    with open('/proc/mounts') as f:
        types = [line.split()[2] for line in f]
    if 'cgroup' in types:
        check = subprocess.run([os.path.join(REPO, 'testbed', 'pin_cgroups.sh'), 'check'],
                               stdout=subprocess.PIPE, universal_newlines=True, check=False)
        pinned = ('every controller on a v1 hierarchy (testbed/pin_cgroups.sh)'
                  if check.returncode == 0 else 'not on the host, floating: %s'
                  % check.stdout.strip())
        return '%s, %s' % ('v1 (hybrid)' if 'cgroup2' in types else 'v1', pinned)
    return 'v2' if 'cgroup2' in types else 'none'


def log(msg):
    print('[stress-daemon %s] %s' % (time.strftime('%H:%M:%S'), msg), flush=True)


def enable_core_dumps():
    """ulimit -c unlimited for libvirtd (restarted if it had no such limit); returns the old
    core_pattern to put back."""
    with open(DEFAULTS_FILE) as f:
        text = f.read()
    restart = False
    if MARK not in text:
        with open(DEFAULTS_FILE + '.kvmops-tmp', 'w') as f:
            f.write(text + ('' if text.endswith('\n') else '\n') + MARK + '\nulimit -c unlimited\n')
        os.chmod(DEFAULTS_FILE + '.kvmops-tmp', os.stat(DEFAULTS_FILE).st_mode & 0o7777)
        os.rename(DEFAULTS_FILE + '.kvmops-tmp', DEFAULTS_FILE)
    pid = faults.libvirtd_pid()
    if pid is not None:
        with open('/proc/%d/limits' % pid) as f:
            core = [line for line in f if line.startswith('Max core file size')]
        restart = not core or core[0].split()[4] != 'unlimited'  # the soft limit
    if restart:
        log('restarting libvirtd with ulimit -c unlimited')
        faults.restart_libvirtd()
    os.makedirs(CORE_DIR, exist_ok=True)
    with open('/proc/sys/kernel/core_pattern') as f:
        old = f.read().strip()
    with open('/proc/sys/kernel/core_pattern', 'w') as f:
        f.write(CORE_PATTERN)
    return old


class ContainerChurn(object):
    """K slots, each starting a privileged systemd container, waiting for its systemd to
    come up (or 30 s), keeping it a few seconds, removing it; again until stopped."""

    def __init__(self, image, slots, tag):
        self.image, self.slots, self.tag = image, slots, tag
        self.stop = threading.Event()
        self.cycles = 0
        self.threads = [threading.Thread(target=self._slot, args=(i,), daemon=True)
                        for i in range(slots)]

    def _podman(self, *argv, **kw):
        return subprocess.run(['podman'] + list(argv), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True,
                              check=False, **kw)

    def _slot(self, i):
        n = 0
        while not self.stop.is_set():
            name = 'kvmops-stress-testbed-daemon-%s-%d-%d' % (self.tag, i, n)
            n += 1
            r = self._podman('run', '-d', '--name', name, '--hostname', name, '--privileged',
                             '--systemd=always', self.image, timeout=120)
            if r.returncode != 0:
                log('podman run %s failed: %s' % (name, r.stdout.strip()[-300:]))
                self.stop.wait(5)
                continue
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not self.stop.is_set():
                st = self._podman('exec', name, 'systemctl', 'is-system-running', timeout=20)
                if st.stdout.strip() in ('running', 'degraded'):
                    break
                time.sleep(0.5)
            self.stop.wait(3)
            self._podman('rm', '-f', '-t', '2', name, timeout=120)
            self.cycles += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(180)
        out = self._podman('ps', '-a', '--format', '{{.Names}}').stdout.split()
        for name in out:
            if name.startswith('kvmops-stress-testbed-daemon-%s-' % self.tag):
                self._podman('rm', '-f', '-t', '2', name, timeout=120)


def guests(prefix, image_dir, count, tiny):
    return [{'name': '%sg%02d' % (prefix, i), 'kernel': tiny + '/vmlinuz',
             'initrd': tiny + '/initrd.img', 'cmdline': 'console=ttyS0',
             'serial': os.path.join(image_dir, 'g%02d.log' % i),
             'disks': [{'path': os.path.join(image_dir, 'g%02d.img' % i), 'size': 0.0625}]}
            for i in range(count)]


DEFAULTS = {'memory': '128MiB', 'vcpus': 1, 'virt_type': 'qemu', 'os_variant': 'linux',
            'networks': [], 'graphics': {'type': 'none'}}


def cleanup(prefix, image_dir):
    import shutil
    try:
        conn = libvirt.open(paths.URI)
    except libvirt.libvirtError as e:  # the daemon died unnoticed (another mount namespace)
        log('cannot connect for the clean-up (%s): starting libvirtd' % e)
        daemon_watch.restart()
        conn = libvirt.open(paths.URI)
    try:
        remove_everything_named(conn, prefix, under=image_dir, parallel=True)
        left = leftovers(conn, prefix, under=image_dir)
    finally:
        conn.close()
    shutil.rmtree(image_dir, ignore_errors=True)
    return left


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    ap.add_argument('--rounds', type=int, default=int(os.environ.get('STRESS_ROUNDS', 8)))
    ap.add_argument('--seconds', type=int, default=int(os.environ.get('STRESS_SECONDS', 540)))
    ap.add_argument('--containers', type=int,
                    default=int(os.environ.get('STRESS_CONTAINERS', 2)))
    ap.add_argument('--guests', type=int, default=10)
    ap.add_argument('--parallel', type=int, default=5)
    ap.add_argument('--json', default=os.path.join(REPO, '.build', 'reports',
                                                   'stress-daemon.json'))
    ap.add_argument('--stop-on-crash', action='store_true',
                    help='end the run at the first daemon crash (to keep its core)')
    ap.add_argument('--record', action='store_true',
                    help='append the run to tests/reliability/stress-daemon.jsonl')
    a = ap.parse_args()
    libvirt.registerErrorHandler(lambda ctx, err: None, None)

    faults.start_libvirtd()
    old_pattern = enable_core_dumps()
    image = None
    if a.containers:
        image = subprocess.run([os.path.join(REPO, 'testbed', 'setup_podman.sh'), 'image',
                                'hypervisor'], stdout=subprocess.PIPE, check=True,
                               universal_newlines=True).stdout.strip()
    with open('/proc/loadavg') as f:
        load_start = ' '.join(f.read().split()[:3])
    with open('/proc/sys/kernel/core_pattern') as f:
        log('libvirt %s, cgroups %s; core_pattern %s; containers: %d slots of %s; load %s'
            % (libvirt_version(), cgroup_layout(), f.read().strip(), a.containers, image,
               load_start))
    tag = uuid.uuid4().hex[:6]
    deaths, rounds, failed_guests = [], 0, 0
    started = time.monotonic()
    churn = ContainerChurn(image, a.containers, tag) if a.containers else None
    try:
        if churn:
            churn.__enter__()
            time.sleep(5)  # the first containers booting
        while rounds < a.rounds and time.monotonic() - started < a.seconds:
            prefix = 'kvmops-t-stress-%s-r%d-' % (tag, rounds)
            image_dir = os.path.join(IMAGE_ROOT, prefix.rstrip('-'))
            os.makedirs(image_dir, mode=0o755)
            os.chmod(IMAGE_ROOT, 0o755)
            gl = guests(prefix, image_dir, a.guests, paths.ASSETS)
            for step, args in (
                    ('create and start', {'defaults': DEFAULTS, 'guests': gl,
                                          'parallel': a.parallel}),
                    ('remove', {'defaults': {'state': 'absent', 'remove_storage': True},
                                'guests': [{'name': g['name']} for g in gl],
                                'parallel': a.parallel})):
                w = daemon_watch.Watch()
                w.start()
                t0 = time.monotonic()
                res = run_module('virt_install_domains', args, timeout=900)
                took = time.monotonic() - t0
                death = w.check()
                bad = (res.get('summary') or {}).get('failed_guests') or []
                failed_guests += len(bad)
                log('round %d %s: %.1f s, %s%s' % (
                    rounds, step, took, 'failed: %s' % faults.short(res.get('msg'), 300)
                    if res.get('failed') else 'ok', '' if death is None else ' DAEMON DIED'))
                if death is not None:
                    deaths.append({'round': rounds, 'step': step, 'death': death,
                                   'module': faults.short(res.get('msg'), 600)})
                    print(death, flush=True)
                    daemon_watch.restart()
                    break
            if deaths and a.stop_on_crash:
                cleanup(prefix, image_dir)
                rounds += 1
                break
            left = cleanup(prefix, image_dir)
            if left:
                log('left after round %d: %s' % (rounds, left))
            rounds += 1
    finally:
        if churn:
            churn.__exit__()
        with open('/proc/sys/kernel/core_pattern', 'w') as f:
            f.write(old_pattern)
        faults.start_libvirtd()
    ran = time.monotonic() - started
    with open('/proc/loadavg') as f:
        load_end = ' '.join(f.read().split()[:3])
    head = subprocess.run(['git', '-C', REPO, 'log', '-1', '--format=%h %s'],
                          stdout=subprocess.PIPE, universal_newlines=True,
                          check=False).stdout.strip()
    summary = {'libvirt': libvirt.getVersion(), 'libvirt_version': libvirt_version(),
               'cgroups': cgroup_layout(), 'batch': faults.short(head, 70), 'rounds': rounds, 'guests_per_round': a.guests,
               'parallel': a.parallel, 'container_slots': a.containers,
               'container_cycles': churn.cycles if churn else 0, 'seconds': round(ran, 1),
               'daemon_crashes': len(deaths), 'failed_guests': failed_guests,
               'load_start': load_start, 'load_end': load_end, 'deaths': deaths,
               'when': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, 'w') as f:
        json.dump(summary, f, indent=1)
    if a.record:
        os.makedirs(os.path.dirname(STRESS_LOG), exist_ok=True)
        with open(STRESS_LOG, 'a') as f:
            f.write(json.dumps(summary, sort_keys=True) + '\n')
    print('stress-daemon: ran %.0f s, %d rounds of %d guests (%d at a time), %d container '
          'start/remove cycles beside them, %d daemon crash(es), %d guest(s) failed; load %s '
          '-> %s' % (ran, rounds, a.guests, a.parallel, summary['container_cycles'],
                     len(deaths), failed_guests, load_start, load_end), flush=True)
    return 1 if deaths else 0


if __name__ == '__main__':
    sys.exit(main())
