# -*- coding: utf-8 -*-
"""Benchmark case "fleet": playbooks/site.yml on 1 and on 3 fresh hypervisors at once.

The hypervisors are privileged systemd containers under podman from the recipe
testbed/images/hypervisor.packages (the molecule `fleet` scenario's), reached over SSH at their
podman addresses, with the fleet scenario's variables (molecule/fleet/group_vars: the demo
inventory's guest, a tiny TCG guest installed from a tree each container serves itself).
Per repetition and fleet size: start fresh containers (not timed), time the first converge, time
the re-run (must report changed=0), remove the containers. Sizes alternate from one repetition
to the next. Writes bench/.work/raw/fleet.json and its own section of bench/results.md
(between the `<!-- section:fleet -->` markers, which bench/report.py keeps).

Usage (bench/run.sh does this for BENCH_CASES=fleet): fleet.py [--reps N]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib as B  # noqa: E402

NAME = 'kvmops-bench-fleet-hv%d'
SITE = os.path.join(B.REPO, 'playbooks', 'site.yml')
GROUP_VARS = os.path.join(B.REPO, 'molecule', 'fleet', 'group_vars', 'hypervisors')
TREE = os.path.join(B.TINY, 'trees', 'rhel')
TREE_PORT = 18089
RESULTS_MD = os.path.join(B.BENCH, 'results.md')
BEGIN, END = '<!-- section:fleet -->', '<!-- /section:fleet -->'


def sh(argv, timeout=300, check=True):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise B.BenchError('%s failed (rc %s): %s' % (' '.join(argv), proc.returncode, proc.stdout[-2000:]))
    return proc.stdout


def remove_containers(n=3):
    for i in range(1, n + 1):
        sh(['podman', 'rm', '--force', '--time', '5', NAME % i], check=False)


def start_fleet(size, work):
    image = sh([os.path.join(B.REPO, 'testbed', 'setup_podman.sh'), 'image', 'hypervisor'],
               timeout=1800).strip().splitlines()[-1]
    key = os.path.join(work, 'id_ed25519')
    if not os.path.exists(key):
        sh(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key])
    hosts = {}
    for i in range(1, size + 1):
        name = NAME % i
        sh(['podman', 'run', '--detach', '--name', name, '--hostname', 'hv%d' % i, '--privileged',
            '--systemd=always', '--label=kvmops.testbed=bench-fleet',
            '--volume=%s.pub:/root/.ssh/authorized_keys:ro' % key,
            '--volume=%s:%s:ro' % (B.TINY, B.TINY), image])
        address = sh(['podman', 'inspect', '--format', '{{.NetworkSettings.IPAddress}}', name]).strip()
        hosts[name] = {'ansible_host': address, 'ansible_user': 'root', 'ansible_private_key_file': key,
                       'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null '
                                                  '-o LogLevel=ERROR'}
    for name in hosts:
        deadline = time.monotonic() + 120
        while sh(['podman', 'exec', name, 'systemctl', 'is-system-running'], check=False).strip() not in (
                'running', 'degraded'):
            if time.monotonic() > deadline:
                raise B.BenchError('%s did not boot within 120 s' % name)
            time.sleep(0.5)
        sh(['podman', 'exec', name, 'systemd-run', '--unit=kvmops-tree', '/usr/bin/python3', '-m', 'http.server',
            '--bind', '127.0.0.1', '--directory', TREE, str(TREE_PORT)])
    inv = os.path.join(work, 'inventory-%d' % size)
    os.makedirs(os.path.join(inv, 'group_vars'), exist_ok=True)
    link = os.path.join(inv, 'group_vars', 'hypervisors')
    if not os.path.islink(link):
        os.symlink(GROUP_VARS, link)
    with open(os.path.join(inv, 'hosts.json'), 'w') as f:
        json.dump({'hypervisors': {'hosts': hosts}}, f)
    # sshd is up once systemd is; wait until Ansible gets in.
    B.run_cmd([os.path.join(B.VENV, 'bin', 'ansible'), '-i', inv, 'hypervisors', '-m', 'ansible.builtin.ping'],
              env=B.ansible_env(), timeout=180)
    return inv


def converge(inv):
    env = B.ansible_env({'ANSIBLE_FORKS': '3', 'ANSIBLE_PIPELINING': '1'})
    cmd = [os.path.join(B.VENV, 'bin', 'ansible-playbook'), '-i', inv, SITE]
    env['ANSIBLE_STDOUT_CALLBACK'] = 'ansible.posix.json'
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=env, timeout=1800, check=False)
    seconds = time.monotonic() - t0
    doc = json.loads(proc.stdout)
    stats = doc['stats']
    if proc.returncode != 0 or any(s['failures'] or s['unreachable'] for s in stats.values()):
        raise B.BenchError('site.yml failed: %s %s' % (json.dumps(stats), proc.stderr[-2000:]))
    return seconds, {h: s['changed'] for h, s in stats.items()}


def measure(reps):
    work = tempfile.mkdtemp(prefix='kvmops-bench-fleet-')
    samples = {1: {'first': [], 'rerun': [], 'rerun_changed': []}, 3: {'first': [], 'rerun': [], 'rerun_changed': []}}
    try:
        for rep in range(reps):
            for size in ((1, 3) if rep % 2 == 0 else (3, 1)):
                remove_containers()
                inv = start_fleet(size, work)
                B.log('fleet: %d host(s), repetition %d: first converge' % (size, rep + 1))
                first = converge(inv)[0]
                B.log('fleet: %d host(s): first %.1f s; re-run' % (size, first))
                rerun, changed = converge(inv)
                B.log('fleet: %d host(s): re-run %.1f s, changed %s' % (size, rerun, changed))
                samples[size]['first'].append(round(first, 2))
                samples[size]['rerun'].append(round(rerun, 2))
                samples[size]['rerun_changed'].append(sum(changed.values()))
    finally:
        remove_containers()
    return samples


def section(data):
    s = data['samples']
    med = {size: {k: statistics.median(s[size][k]) for k in ('first', 'rerun')} for size in (1, 3)}
    lines = [
        BEGIN,
        '## Case fleet: site.yml on 1 and on 3 hypervisors at once',
        '',
        'Measured by `bench/fleet.py` (`BENCH_CASES=fleet make bench`) on %s UTC, %d repetition(s) per size, '
        'no warm-up (every first converge needs fresh hosts); load average at start / end %s / %s. '
        'Each hypervisor is a privileged systemd container (podman, recipe testbed/images/hypervisor.packages, '
        'the libvirt stack preinstalled) reached over SSH; site.yml runs with forks=3 and the molecule fleet '
        "scenario's variables (one tiny TCG guest per host, installed from a tree the host serves itself). "
        'Wall-clock time of the `ansible-playbook` process; the first converge includes the guest install.'
        % (data['date'], data['reps'], ' '.join(map(str, data['load_start'])), ' '.join(map(str, data['load_end']))),
        '',
        '| hosts | first converge median (min-max) | re-run median (min-max) | re-run changed |',
        '|---|---|---|---|',
    ]
    for size in (1, 3):
        f, r = s[size]['first'], s[size]['rerun']
        lines.append('| %d | %.1f s (%.1f-%.1f) | %.1f s (%.1f-%.1f) | %s |' % (
            size, med[size]['first'], min(f), max(f), med[size]['rerun'], min(r), max(r),
            ', '.join(map(str, s[size]['rerun_changed']))))
    lines += [
        '',
        'Ratio 3 hosts / 1 host (medians, same run): first converge %.2fx, re-run %.2fx (1.00x would be '
        'perfectly parallel; 3.00x fully serial). The machine has 2 cores shared by the three hosts, '
        'their libvirtd and guests, and whatever else runs on it.'
        % (med[3]['first'] / med[1]['first'], med[3]['rerun'] / med[1]['rerun']),
        END,
    ]
    return '\n'.join(lines)


def write_section(text):
    old = open(RESULTS_MD).read() if os.path.exists(RESULTS_MD) else ''
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        new = old.rstrip('\n') + '\n\n' + text + '\n'
    with open(RESULTS_MD, 'w') as f:
        f.write(new)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--reps', type=int, default=int(os.environ.get('BENCH_FLEET_REPS', '2')))
    args = parser.parse_args()
    data = {'date': time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()), 'reps': args.reps,
            'load_start': B.loadavg()}
    data['samples'] = measure(args.reps)
    data['load_end'] = B.loadavg()
    os.makedirs(B.RAW, exist_ok=True)
    with open(os.path.join(B.RAW, 'fleet.json'), 'w') as f:
        json.dump(data, f, indent=1)
    write_section(section(data))
    B.log('fleet: written to bench/results.md')


if __name__ == '__main__':
    main()
