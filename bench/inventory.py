# -*- coding: utf-8 -*-
"""Benchmark case "inventory" (issue 33): the libvirt_guests inventory plugin at scale.

libvirt's test driver simulates the hypervisors offline: `test:///FILE` opens a <node> file
holding a network and many <domain> elements (no daemon, no guest runs, nothing is sent
anywhere). Each "hypervisor" has GUESTS guests (a third shut off, the others running, every
one tagged and on the node's NAT network; the test driver answers lease and agent queries with
an address from that network's range). Measured, wall-clock and peak RSS of
`ansible-inventory -i SOURCE --list > /dev/null` (`/usr/bin/time -f '%e %M'`):

- ours: one libvirt_guests.yml listing the N URIs;
- community: community.libvirt's `libvirt` inventory plugin (from the venv's `ansible`
  bundle), one source file per URI as it requires (`-i DIR`);
- ours cached: the same file with `cache: true` (jsonfile) and a warm cache;
- hang: ours over the 50 URIs plus one hypervisor that accepts the TCP connection and never
  answers (a listener on 127.0.0.1 of this process, `qemu+tcp://127.0.0.1:PORT/system`),
  connect_timeout 5: it must cost about those 5 s, not the whole inventory.

Every configuration is checked once (the number of hosts listed) before it is timed. Sizes
(hypervisors) BENCH_INVENTORY_SIZES, default "10 50 200"; GUESTS per hypervisor 20; reps
BENCH_REPS (default 3 here), order rotated per repetition. Writes bench/.work/raw/inventory.json
and its own section of bench/results.md (between `<!-- section:inventory -->` markers).

Usage: inventory.py [--reps N] [--sizes "10 50 200"]
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib as B  # noqa: E402

GUESTS = 20
HANG_TIMEOUT = 5
WORK = os.path.join(B.WORK, 'inventory')
RESULTS_MD = os.path.join(B.BENCH, 'results.md')
BEGIN, END = '<!-- section:inventory -->', '<!-- /section:inventory -->'
TAG_NS = 'urn:kvmops:hypervisor:tags:1'
TAGS = ('web', 'db', 'cache', 'batch')

NODE_HEAD = """<node>
  <network><name>default</name><bridge name='virbr0'/><forward mode='nat'/>
    <ip address='10.{a}.{b}.1' netmask='255.255.255.0'><dhcp><range start='10.{a}.{b}.2' end='10.{a}.{b}.254'/></dhcp></ip>
  </network>
"""
DOMAIN = """  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>hv{hv:03d}-g{g:02d}</name><memory>{mem}</memory><vcpu>{vcpu}</vcpu>
    <os><type arch='x86_64'>hvm</type></os>{runstate}
    <metadata><k:tags xmlns:k='{ns}'>{tags}</k:tags></metadata>
    <devices><interface type='network'><mac address='52:54:{m1:02x}:{m2:02x}:00:{g:02x}'/><source network='default'/></interface></devices>
  </domain>
"""


def make_node(hv):
    text = NODE_HEAD.format(a=100 + hv // 250, b=hv % 250)
    for g in range(GUESTS):
        tags = ''.join('<k:tag>%s</k:tag>' % t for t in (TAGS[g % 4], 'hv%03d' % hv))
        text += DOMAIN.format(hv=hv, g=g, mem=262144 * (1 + g % 4), vcpu=1 + g % 2, ns=TAG_NS, tags=tags,
                              runstate='<test:runstate>5</test:runstate>' if g % 3 == 0 else '',
                              m1=hv // 256, m2=hv % 256)
    return text + '</node>\n'


def prepare(size):
    """Node files and the three inventory configurations for `size` hypervisors."""
    base = os.path.join(WORK, 'n%d' % size)
    shutil.rmtree(base, ignore_errors=True)
    for sub in ('nodes', 'ours', 'ours_cached', 'community'):
        os.makedirs(os.path.join(base, sub))
    uris = []
    for hv in range(size):
        node = os.path.join(base, 'nodes', 'hv%03d.xml' % hv)
        with open(node, 'w') as f:
            f.write(make_node(hv))
        uri = 'test://' + node
        uris.append(uri)
        with open(os.path.join(base, 'community', 'hv%03d.yml' % hv), 'w') as f:
            f.write('plugin: community.libvirt.libvirt\nuri: %s\n' % uri)
    ours = {'plugin': 'kvmops.hypervisor.libvirt_guests', 'uris': uris}
    write_yaml(os.path.join(base, 'ours', 'libvirt_guests.yml'), ours)
    write_yaml(os.path.join(base, 'ours_cached', 'libvirt_guests.yml'),
               dict(ours, cache=True, cache_plugin='ansible.builtin.jsonfile',
                    cache_connection=os.path.join(base, 'cache'), cache_timeout=86400))
    return base, uris


def write_yaml(path, data):
    with open(path, 'w') as f:
        json.dump(data, f, indent=1)   # JSON is YAML


def plain(value):
    """ansible-inventory's JSON without its {'__ansible_unsafe': v} wrappers."""
    if isinstance(value, dict):
        if list(value) == ['__ansible_unsafe']:
            return value['__ansible_unsafe']
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def write_static(base, source):
    """A static YAML (JSON) inventory with what `source` lists; its path."""
    proc = subprocess.run(inventory_cmd(source), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          universal_newlines=True, env=env(), timeout=900, check=True)
    listed = plain(json.loads(proc.stdout))
    hostvars = listed['_meta']['hostvars']
    children = {}
    for group, body in listed.items():
        if group in ('_meta', 'all', 'ungrouped') or not body.get('hosts'):
            continue
        children[group] = {'hosts': dict((h, None) for h in body['hosts'])}
    path = os.path.join(base, 'static.yml')
    write_yaml(path, {'all': {'hosts': hostvars, 'children': children}})
    return path


def env():
    return B.ansible_env({'ANSIBLE_STDOUT_CALLBACK': 'default', 'ANSIBLE_INVENTORY_UNPARSED_FAILED': '1',
                          'ANSIBLE_INVENTORY_ENABLED': 'auto,yaml'})


def inventory_cmd(source):
    return [os.path.join(B.VENV, 'bin', 'ansible-inventory'), '-i', source, '--list']


def check(source, expected):
    proc = subprocess.run(inventory_cmd(source), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env(), timeout=900, check=False)
    if proc.returncode != 0:
        raise B.BenchError('%s failed: %s' % (source, proc.stderr[-2000:]))
    hosts = json.loads(proc.stdout)['_meta']['hostvars']
    if len(hosts) != expected:
        raise B.BenchError('%s listed %d hosts, expected %d' % (source, len(hosts), expected))
    return proc.stderr


def timed(source, timeout=900):
    """(wall seconds, peak RSS MiB, user+sys CPU seconds, stderr) of one ansible-inventory --list."""
    out = os.path.join(WORK, 'time.out')
    start = time.monotonic()
    proc = subprocess.run(['/usr/bin/time', '-f', '%e %M %U %S', '-o', out] + inventory_cmd(source),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True,
                          env=env(), timeout=timeout, check=False)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise B.BenchError('%s failed: %s' % (source, proc.stderr[-2000:]))
    _e, rss, user, system = open(out).read().split()[-4:]
    return wall, int(rss) / 1024.0, float(user) + float(system), proc.stderr


class Hang(object):
    """A TCP listener on 127.0.0.1 that accepts connections and never says anything."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _peer = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


def measure(sizes, reps):
    data = {'sizes': {}, 'hang': None}
    for size in sizes:
        base, uris = prepare(size)
        sources = {'ours': os.path.join(base, 'ours', 'libvirt_guests.yml'),
                   'community': os.path.join(base, 'community'),
                   'ours_cached': os.path.join(base, 'ours_cached', 'libvirt_guests.yml')}
        expected = size * GUESTS
        for name, source in sources.items():
            check(source, expected)   # also warms the cache of ours_cached
        # Floors: ansible-inventory reading the very hosts, groups and variables ours lists from a
        # static file (what any cache could at best reach), and a one-host static inventory
        # (ansible-inventory's start-up).
        sources['static'] = write_static(base, sources['ours'])
        sources['startup'] = os.path.join(base, 'startup.yml')
        write_yaml(sources['startup'], {'all': {'hosts': {'one': {'a': 1}}}})
        samples = dict((name, {'wall': [], 'rss': [], 'cpu': []}) for name in sources)
        order = list(sources)
        for rep in range(reps):
            for name in order[rep % len(order):] + order[:rep % len(order)]:
                wall, rss, cpu, _err = timed(sources[name])
                samples[name]['wall'].append(round(wall, 3))
                samples[name]['rss'].append(round(rss, 1))
                samples[name]['cpu'].append(round(cpu, 2))
                B.log('inventory n=%d %s: %.2f s, %.0f MiB' % (size, name, wall, rss))
        data['sizes'][size] = samples
        if size == 50:
            data['hang'] = measure_hang(base, uris, reps)
    return data


def measure_hang(base, uris, reps):
    hang = Hang()
    try:
        hung = 'qemu+tcp://127.0.0.1:%d/system' % hang.port
        config = os.path.join(base, 'hang', 'libvirt_guests.yml')
        os.makedirs(os.path.dirname(config), exist_ok=True)
        write_yaml(config, {'plugin': 'kvmops.hypervisor.libvirt_guests', 'uris': uris + [hung],
                            'connect_timeout': HANG_TIMEOUT})
        walls = []
        stderr = ''
        for _rep in range(reps):
            wall, _rss, _cpu, stderr = timed(config, timeout=300)
            walls.append(round(wall, 3))
            B.log('inventory hang: %.2f s' % wall)
        warned = 'no answer within %ss' % HANG_TIMEOUT in ' '.join(stderr.split())
        return {'wall': walls, 'timeout': HANG_TIMEOUT, 'warned': warned, 'uri': hung}
    finally:
        hang.close()


def med(values):
    return statistics.median(values)


def section(data):
    sizes = sorted(int(s) for s in data['sizes'])
    s = dict((int(k), v) for k, v in data['sizes'].items())
    lines = [
        BEGIN,
        '## Case inventory: libvirt_guests over many hypervisors (issue 33)',
        '',
        'Measured by `bench/inventory.py` (`BENCH_CASES=inventory bench/run.sh`) on %s UTC, %d repetition(s) '
        'after one checked run of each configuration; load average at start / end %s / %s. Each hypervisor is a '
        "libvirt test-driver node file (`test:///FILE`: no daemon) with %d guests (a third shut off, every one "
        'tagged, one NIC on a NAT network). Wall-clock time and peak RSS of `ansible-inventory --list` (ansible-core '
        '%s): ours = one `libvirt_guests.yml` with every URI; community = the `libvirt` plugin of community.libvirt %s, '
        'one source per URI; cached = ours with `cache: true` (jsonfile), warm. Medians; ratios from the same run.'
        % (data['date'], data['reps'], ' '.join(map(str, data['load_start'])), ' '.join(map(str, data['load_end'])),
           GUESTS, data.get('ansible_core', '?'), data.get('community_libvirt', '?')),
        '',
        '| hypervisors (guests) | ours | community.libvirt | ours cached | ours / community | cached / community | '
        'peak RSS ours / community / cached |',
        '|---|---|---|---|---|---|---|',
    ]
    for n in sizes:
        o, c, k = (med(s[n][x]['wall']) for x in ('ours', 'community', 'ours_cached'))
        ro, rc, rk = (med(s[n][x]['rss']) for x in ('ours', 'community', 'ours_cached'))
        lines.append('| %d (%d) | %.2f s | %.2f s | %.2f s | %.2fx | %.2fx | %.0f / %.0f / %.0f MiB |'
                     % (n, n * GUESTS, o, c, k, o / c, k / c, ro, rc, rk))
    lines += ['', 'Floors (same run): `ansible-inventory --list` of a static YAML file holding exactly the hosts, groups and '
              'variables ours lists (what any cache can at best reach), and of a one-host static file (start-up):', '',
              '| hypervisors | static, same data | one host | ours cached / static | CPU s ours / community / cached / static |',
              '|---|---|---|---|---|']
    for n in sizes:
        st, one, k = (med(s[n][x]['wall']) for x in ('static', 'startup', 'ours_cached'))
        cpu = ' / '.join('%.2f' % med(s[n][x]['cpu']) for x in ('ours', 'community', 'ours_cached', 'static'))
        lines.append('| %d | %.2f s | %.2f s | %.2fx | %s |' % (n, st, one, k / st, cpu))
    if 50 in s:
        o, c, k = (med(s[50][x]['wall']) for x in ('ours', 'community', 'ours_cached'))
        lines += ['', 'Goals at 50 hypervisors: ours at most 0.5x community (%.2fx: %s), cached at most 0.1x '
                  '(%.2fx: %s).' % (o / c, 'met' if o / c <= 0.5 else 'NOT met', k / c,
                                    'met' if k / c <= 0.1 else 'NOT met')]
    if len(sizes) > 1:
        first, last = sizes[0], sizes[-1]
        growth = ', '.join('%s %.2fx' % (x, med(s[last][x]['wall']) / med(s[first][x]['wall']))
                           for x in ('ours', 'community', 'ours_cached'))
        lines += ['', 'Growth from %d to %d hypervisors (%.0fx the guests): %s.' % (first, last, last / first, growth)]
    if data.get('hang'):
        h = data['hang']
        base = med(s[50]['ours']['wall']) if 50 in s else None
        lines += ['', 'A hypervisor that accepts the connection and never answers (%s) beside the 50, '
                  'connect_timeout %ds: %.2f s (median; the 50 alone %s), the timeout warning %s.'
                  % (h['uri'].split('//')[0] + '//127.0.0.1:PORT/system', h['timeout'], med(h['wall']),
                     '%.2f s' % base if base else 'not measured', 'shown' if h['warned'] else 'MISSING')]
    lines.append(END)
    return '\n'.join(lines)


def write_section(text):
    old = open(RESULTS_MD).read() if os.path.exists(RESULTS_MD) else ''
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        new = old.rstrip('\n') + '\n\n' + text + '\n'
    with open(RESULTS_MD, 'w') as f:
        f.write(new)


def versions():
    py = os.path.join(B.VENV, 'bin', 'python')
    core = subprocess.run([py, '-c', 'import ansible.release as r; print(r.__version__)'],
                          stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout.strip()
    manifest = subprocess.run([py, '-c', 'import ansible_collections.community.libvirt as c, os, json; '
                               'print(json.load(open(os.path.join(list(c.__path__)[0], "MANIFEST.json")))'
                               '["collection_info"]["version"])'],
                              stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout.strip()
    return core, manifest


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--reps', type=int, default=int(os.environ.get('BENCH_REPS', '3')))
    parser.add_argument('--sizes', default=os.environ.get('BENCH_INVENTORY_SIZES', '10 50 200'))
    parser.add_argument('--no-report', action='store_true')
    args = parser.parse_args()
    core, community = versions()
    data = {'date': time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()), 'reps': args.reps,
            'load_start': B.loadavg(), 'ansible_core': core, 'community_libvirt': community}
    data.update(measure([int(x) for x in args.sizes.split()], args.reps))
    data['load_end'] = B.loadavg()
    os.makedirs(B.RAW, exist_ok=True)
    with open(os.path.join(B.RAW, 'inventory.json'), 'w') as f:
        json.dump(data, f, indent=1)
    text = section(data)
    print(text)
    if not args.no_report:
        write_section(text)
        B.log('inventory: written to bench/results.md')


if __name__ == '__main__':
    main()
