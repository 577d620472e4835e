# -*- coding: utf-8 -*-
"""Case 10: cloud-image guests from task start to SSH-ready, one and three at a time.

The Debian 12 cloud image of the test bed (testbed/images/cloud.*) is served on 127.0.0.1;
each repetition starts from an empty base-image cache (so the first guest's time includes
the download and verification), creates the guests (qcow2 overlays + cloud-init seed) and
waits with wait_for: ssh through QEMU user-mode port forwards on 127.0.0.1 (Debian 12's
libvirt has passt disabled). Nothing connects to a guest's NAT address. The serial console
gives each guest's boot-to-cloud-init-finished time. community.libvirt's virt_cloud_instance
is not in the pinned ansible 12.3.0 bundle (community.libvirt 2.0.0): no baseline here.

Results: bench/.work/raw/case10.json and bench/results-cloud.md.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import benchlib as B

sys.path.insert(0, os.path.join(B.REPO, 'tests'))
from support.http_server import TreeServer  # noqa: E402

CLOUD = os.path.join(os.environ.get('KVMOPS_CACHE', '/var/cache/kvmops-testbed'), 'images',
                     'cloud')
# Not under B.PREFIX: other benchmark runs on a shared machine remove every kvmops-bench-*
# domain when they clean up; this case cleans up its own names.
PREFIX = 'kvmops-cloudbench-'
DIR = os.path.join(B.IMAGE_ROOT, PREFIX + 'img')
NET = PREFIX + 'net'


def _free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _network():
    c = B.conn()
    for third in range(231, 250):
        xml = ("<network><name>%s</name><bridge name='kvcbench7'/><ip address='192.168.%d.1' "
               "netmask='255.255.255.0'><dhcp><range start='192.168.%d.10' "
               "end='192.168.%d.99'/></dhcp></ip></network>" % (NET, third, third, third))
        try:
            return c.networkCreateXML(xml)
        except B.libvirt.libvirtError:
            continue
    raise B.BenchError('no free /24 for the benchmark network')


def _guest(n, url, digest, key):
    return {
        'name': '%scloud%d' % (PREFIX, n), 'memory': '768MiB', 'vcpus': 1,
        'virt_type': 'qemu', 'os_variant': 'debian12', 'machine': 'q35',
        'kernel': os.path.join(CLOUD, 'vmlinuz'), 'initrd': os.path.join(CLOUD, 'initrd.img'),
        'cmdline': 'root=/dev/vda rw console=ttyS0 net.ifnames=0',
        'serial': os.path.join(DIR, 'cloud%d.log' % n), 'graphics': {'type': 'none'},
        'networks': [{'network': NET}],
        'disks': [{'path': os.path.join(DIR, 'cloud%d.qcow2' % n), 'size': 4,
                   'base_image': {'url': url, 'checksum': 'sha256:' + digest,
                                  'cache_dir': os.path.join(DIR, 'base')}}],
        'cloud_init': {'hostname': 'cloud%d' % n, 'ssh_authorized_keys': [key],
                       'seed_dir': os.path.join(DIR, 'seeds'),
                       'network_config': {'version': 2, 'ethernets': {
                           'eth0': {'dhcp4': True}, 'eth1': {'dhcp4': True}}}},
        'port_forwards': [{'host_port': _free_port(), 'guest_port': 22}],
        'port_forward_backend': 'qemu', 'wait_for': 'ssh', 'wait_timeout': 1500,
    }


_FINISHED = re.compile(r'Cloud-init v\. \S+ finished at .*Up ([0-9.]+) seconds')


def _cloud_init_up(log):
    try:
        with open(log, errors='replace') as f:
            m = _FINISHED.search(f.read())
    except OSError:
        return None
    return float(m.group(1)) if m else None


def _cleanup():
    c = B.conn()
    for dom in c.listAllDomains():
        if dom.name().startswith(PREFIX):
            B._remove_domain(dom)  # pylint: disable=protected-access
    for net in c.listAllNetworks():
        if net.name().startswith(PREFIX):
            try:
                if net.isActive():
                    net.destroy()
                if net.isPersistent():
                    net.undefine()
            except B.libvirt.libvirtError:
                pass


def _reset():
    _cleanup()
    shutil.rmtree(DIR, ignore_errors=True)
    os.makedirs(DIR, mode=0o755)


def run(reps, counts=(1, 3)):
    subprocess.run([os.path.join(B.REPO, 'testbed', 'build_debian_image.sh'), 'cloud', '--disk'],
                   check=True, stdout=subprocess.DEVNULL, timeout=1800)
    import hashlib
    h = hashlib.sha256()
    with open(os.path.join(CLOUD, 'disk.qcow2'), 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    digest = h.hexdigest()
    www = os.path.join(B.WORK, 'cloud-www')
    shutil.rmtree(www, ignore_errors=True)
    os.makedirs(www)
    os.symlink(os.path.join(CLOUD, 'disk.qcow2'), os.path.join(www, 'debian-12-cloud.qcow2'))
    key = os.path.join(B.WORK, 'cloud-key')
    for p in (key, key + '.pub'):
        if os.path.exists(p):
            os.unlink(p)
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key], check=True)
    with open(key + '.pub') as f:
        pub = f.read().strip()
    server = TreeServer(www)
    out = {'reps': reps, 'counts': {}, 'load_start': B.loadavg()}
    try:
        for count in counts:
            samples = []
            for rep in range(reps):
                _reset()
                net = _network()
                try:
                    guests = [_guest(n, server.url + 'debian-12-cloud.qcow2', digest, pub)
                              for n in range(1, count + 1)]
                    vars_file = B.write_vars('cloud%d' % count, {'bench_cloud_guests': guests})
                    dt, _counts, doc = B.run_playbook('cloud_kvmops.yml', vars_file, timeout=3600)
                    ci = [_cloud_init_up(g['serial']) for g in guests]
                    samples.append({'seconds': round(dt, 1), 'cloud_init_finished_up': ci,
                                    'tool_cpu': round(B.LAST_CPU[0], 1)})
                    B.log('case10 %d guest(s) rep %d: SSH-ready after %.0fs (cloud-init '
                          'finished at guest uptime %s)' % (count, rep, dt, ci))
                finally:
                    _cleanup()
            secs = sorted(s['seconds'] for s in samples)
            out['counts'][str(count)] = {'samples': samples, 'median': secs[len(secs) // 2]}
    finally:
        server.close()
        _cleanup()
        shutil.rmtree(DIR, ignore_errors=True)
    out['load_end'] = B.loadavg()
    _write_md(out)
    return out


def _write_md(out):
    lines = ['# Case 10: cloud guests from task start to SSH-ready\n',
             'Measured %s UTC; load average at start %s, at end %s; %d repetition(s).\n'
             % (time.strftime('%F %T', time.gmtime()), out['load_start'], out['load_end'],
                out['reps']),
             'Debian 12 cloud image built offline (testbed/images/cloud.*), TCG, direct kernel '
             'boot, 768 MiB, 1 vCPU; from an empty base-image cache (download + sha256 '
             'verification of the ~500 MB image from 127.0.0.1 included) to every guest\'s '
             'SSH banner through its 127.0.0.1 forward.\n',
             '| guests | median s | samples s | cloud-init finished at guest uptime s |',
             '|---|---|---|---|']
    for count, c in sorted(out['counts'].items()):
        lines.append('| %s | %s | %s | %s |' % (
            count, c['median'], ', '.join(str(s['seconds']) for s in c['samples']),
            '; '.join(', '.join(str(x) for x in s['cloud_init_finished_up'])
                      for s in c['samples'])))
    lines.append('\nBaseline: community.libvirt\'s virt_cloud_instance is not in the pinned '
                 'ansible 12.3.0 bundle (community.libvirt 2.0.0), so it cannot run here.\n')
    with open(os.path.join(B.BENCH, 'results-cloud.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
