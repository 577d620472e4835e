# -*- coding: utf-8 -*-
"""Case 6: playbooks/site.yml with the demo inventory on a prepared host (packages present).

Every repetition is a first converge of the benchmark's own image directory, pool and guest
(the demo guest renamed kvmops-bench-site-guest, installed from the tiny install tree served
on 127.0.0.1), followed by the idempotent re-run. Between repetitions everything the run made
is removed: the guest, its pool and directory, the install-media cache entry, the SELinux
file-context rule, and qemu.conf is restored byte for byte (with a libvirtd restart) if the
converge changed it. Runs under the exclusive test-bed lock (site.yml may restart libvirtd).
"""
import os
import shutil
import subprocess
import sys
import time

import benchlib as B

SITE_DIR = os.path.join(B.IMAGE_ROOT, B.PREFIX + 'site')
POOL = B.PREFIX + 'site'
GUEST = B.PREFIX + 'site-guest'
PORT = int(os.environ.get('BENCH_SITE_PORT', '18190'))
QEMU_CONF = '/etc/libvirt/qemu.conf'
BOOT_CACHE = '/var/lib/libvirt/boot/kvmops'


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:
        return None


def _listdir(path):
    try:
        return set(os.listdir(path))
    except OSError:
        return set()


def _wait_libvirt():
    for _attempt in range(150):
        if subprocess.run(['virsh', '-c', B.URI, 'version'], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode == 0:
            return
        time.sleep(0.2)
    raise B.BenchError('libvirtd did not answer after a restart')


def _selinux_rules():
    if not os.path.exists('/usr/sbin/semanage'):
        return []
    out = subprocess.run(['semanage', 'fcontext', '-l', '-C'], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, universal_newlines=True, check=False).stdout
    return [ln.split()[0] for ln in out.splitlines() if B.PREFIX in ln and ln.split()]


class Reset(object):
    """Undo what a converge made, so the next repetition is a first converge again."""

    def __init__(self):
        self.qemu_conf = _read(QEMU_CONF)
        self.boot_cache = _listdir(BOOT_CACHE)
        self.restarts = 0

    def __call__(self):
        B.reconnect()
        B.cleanup(recreate_dir=False)
        shutil.rmtree(SITE_DIR, ignore_errors=True)
        for entry in _listdir(BOOT_CACHE) - self.boot_cache:
            shutil.rmtree(os.path.join(BOOT_CACHE, entry), ignore_errors=True)
        for rule in _selinux_rules():
            subprocess.run(['semanage', 'fcontext', '-d', rule], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        if self.qemu_conf is not None and _read(QEMU_CONF) != self.qemu_conf:
            tmp = QEMU_CONF + '.kvmops-bench'
            with open(tmp, 'wb') as f:
                f.write(self.qemu_conf)
            shutil.copystat(QEMU_CONF, tmp)
            os.rename(tmp, QEMU_CONF)
            subprocess.run(['service', 'libvirtd', 'restart'], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            _wait_libvirt()
            self.restarts += 1
            B.reconnect()


def _changed_tasks(doc):
    names = []
    for play in doc.get('plays', []):
        for task in play.get('tasks', []):
            for res in task.get('hosts', {}).values():
                if res.get('changed'):
                    names.append(task.get('task', {}).get('name'))
    return names


def run(reps, site, inventory):
    tree = os.path.join(B.TINY, 'trees', 'rhel')
    extra = B.write_vars('site', {
        'image_storage_dir': SITE_DIR, 'image_storage_pool_name': POOL,
        'demo_guest_name': GUEST, 'demo_tree_port': PORT,
    })
    reset = Reset()
    server = subprocess.Popen([sys.executable, '-m', 'http.server', '--bind', '127.0.0.1',
                               '--directory', tree, str(PORT)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    first, rerun = [], []
    runs = []
    load = {'start': B.loadavg()}
    try:
        time.sleep(0.5)
        if server.poll() is not None:
            raise B.BenchError('cannot serve the install tree on 127.0.0.1:%d' % PORT)
        for rep in range(reps + 1):
            warm = rep == 0
            reset()
            dt1, c1, doc1 = B.run_playbook(site, extra, inventory=inventory)
            dt2, c2, doc2 = B.run_playbook(site, extra, inventory=inventory)
            B.reconnect()
            try:
                state = B.conn().lookupByName(GUEST).isActive()
            except B.libvirt.libvirtError:
                state = None
            B.log('case6 rep %d%s first %.1fs (tasks %d, changed %d)  re-run %.1fs (tasks %d, '
                  'changed %d)  guest running=%s' % (
                      rep, ' (warm-up)' if warm else '', dt1, c1['items'],
                      c1['stats']['localhost']['changed'], dt2, c2['items'],
                      c2['stats']['localhost']['changed'], state))
            runs.append({'rep': rep, 'first': {'seconds': dt1, 'counts': c1,
                                               'changed_tasks': _changed_tasks(doc1)},
                         'rerun': {'seconds': dt2, 'counts': c2,
                                   'changed_tasks': _changed_tasks(doc2)},
                         'guest_running': state})
            if not warm:
                first.append(dt1)
                rerun.append(dt2)
    finally:
        server.terminate()
        server.wait()
        reset()
    load['end'] = B.loadavg()
    times = {'first_converge': B.summary(first), 'rerun': B.summary(rerun)}
    return {'available': True, 'times': times,
            'runs': runs, 'libvirtd_restarts_to_restore_qemu_conf': reset.restarts,
            'load': load, 'reps': reps, 'site': os.path.relpath(site, B.REPO),
            'inventory': os.path.relpath(inventory, B.REPO),
            'overrides': {'image_storage_dir': SITE_DIR, 'image_storage_pool_name': POOL,
                          'demo_guest_name': GUEST, 'demo_tree_port': PORT}}
