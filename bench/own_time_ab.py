# -*- coding: utf-8 -*-
"""A module's own time between commits, interleaved (issue 24: "module run time and imports
must not get worse"): the AnsiballZ payload of a re-run with nothing to do, run with the
target's Python, for one guest (virt_install_domain) and for a batch of ten
(virt_install_domains), for each tree given, in rotating order, after one warm-up round.
The guests are defined, never started (state: stopped): what is measured is the module's
start, imports, look-up, plan and drift, not QEMU.

    .venv/bin/python bench/own_time_ab.py REPS TREE [TREE ...] > bench/results-own-time.md

A TREE is a checkout (git worktree) of a commit with `make collection-link` done in it; the
first is the baseline. Names: kvmops-ab-*, images in /var/lib/libvirt/images/kvmops-ab,
removed at the end. Run it alone: figures taken while other runs share the cores are not
results (the load average at start and end is printed).
"""
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import libvirt

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.environ.get('KVMOPS_VENV', os.path.join(os.path.dirname(HERE), '.venv'))
TARGET_PYTHON = '/usr/bin/python3'
IMG = '/var/lib/libvirt/images/kvmops-ab'
KERNEL = '/var/cache/kvmops-testbed/tiny/vmlinuz'
INITRD = '/var/cache/kvmops-testbed/tiny/initrd.img'
NAMES = ['kvmops-ab-b%02d' % i for i in range(1, 11)]
COMMON = {'virt_type': 'qemu', 'memory': 256, 'vcpus': 1, 'os_variant': 'generic',
          'networks': [{'network': 'default'}], 'graphics': {'type': 'vnc', 'listen': '127.0.0.1'},
          'kernel': KERNEL, 'initrd': INITRD, 'cmdline': 'console=ttyS0', 'state': 'stopped'}


def disk(name):
    return [{'path': os.path.join(IMG, name + '.img'), 'size': 1, 'format': 'raw', 'sparse': True}]


CASES = {
    'one guest': ('virt_install_domain', dict(COMMON, name='kvmops-ab-s1', disks=disk('s1'))),
    'batch of 10': ('virt_install_domains', {
        'defaults': COMMON, 'guests': [{'name': n, 'disks': disk(n)} for n in NAMES]}),
}


def payload(tree, module, args, work):
    """Ansible builds the module's payload from tree's collection and keeps it (the first run
    also makes the guests)."""
    rtmp = tempfile.mkdtemp(dir=work)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(tree, '.build', 'collections'),
               ANSIBLE_KEEP_REMOTE_FILES='1', ANSIBLE_REMOTE_TMP=rtmp,
               ANSIBLE_LOAD_CALLBACK_PLUGINS='0')
    proc = subprocess.run([os.path.join(VENV, 'bin', 'ansible'), 'localhost', '-i', 'localhost,',
                           '-c', 'local', '-e', 'ansible_python_interpreter=' + TARGET_PYTHON,
                           '-m', 'kvmops.hypervisor.' + module,
                           '-a', json.dumps(args)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=False)
    found = glob.glob(os.path.join(rtmp, '*', 'AnsiballZ_*.py'))
    if proc.returncode or not found:
        sys.exit('%s in %s failed:\n%s' % (module, tree, proc.stdout[-2000:]))
    return found[0]


def loadavg():
    with open('/proc/loadavg') as f:
        return f.read().split()[:3]


def cleanup():
    conn = libvirt.open('qemu:///system')
    try:
        for dom in conn.listAllDomains():
            if dom.name().startswith('kvmops-ab-'):
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    finally:
        conn.close()
    shutil.rmtree(IMG, ignore_errors=True)


def main():
    reps, trees = int(sys.argv[1]), [os.path.abspath(t) for t in sys.argv[2:]]
    work = tempfile.mkdtemp(prefix='kvmops-ab-')
    cleanup()
    os.makedirs(IMG)
    try:
        payloads = {}
        for tree in trees:
            for case, (module, args) in CASES.items():
                payloads[(tree, case)] = payload(tree, module, args, work)
        keys = sorted(payloads)
        times = dict((k, []) for k in keys)
        load_start = loadavg()
        for rep in range(reps + 1):
            for k in keys[rep % len(keys):] + keys[:rep % len(keys)]:
                t0 = time.monotonic()
                proc = subprocess.run([TARGET_PYTHON, payloads[k]], stdout=subprocess.PIPE,
                                      universal_newlines=True, check=False)
                dt = time.monotonic() - t0
                res = json.loads(proc.stdout)
                if res.get('failed') or (rep and res.get('changed')):
                    sys.exit('%s: not a re-run with nothing to do: %s' % (k, proc.stdout[:1500]))
                if rep:
                    times[k].append(dt)
        load_end = loadavg()
    finally:
        cleanup()
        shutil.rmtree(work, ignore_errors=True)
    base = trees[0]
    print('Own time of a re-run with nothing to do (payload with %s), %d interleaved '
          'repetitions after one warm-up; load average %s at start, %s at end.\n'
          % (TARGET_PYTHON, reps, ' '.join(load_start), ' '.join(load_end)))
    print('| tree | commit | case | median | min | / baseline (medians) |')
    print('|---|---|---|---:|---:|---:|')
    for tree in trees:
        commit = subprocess.run(['git', '-C', tree, 'log', '-1', '--format=%h'], check=True,
                                stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
        for case in CASES:
            v = times[(tree, case)]
            ratio = statistics.median(v) / statistics.median(times[(base, case)])
            print('| %s | %s | %s | %.3f s | %.3f s | %.2fx |' % (
                os.path.basename(tree), commit, case, statistics.median(v), min(v), ratio))


if __name__ == '__main__':
    main()
