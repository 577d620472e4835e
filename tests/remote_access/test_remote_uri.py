"""What a remote URI means (issue 26), for real: a second libvirtd in a podman hypervisor
(the fleet's `hypervisor` image), reached from this machine with qemu+tcp:// to the
container's podman address (auth none, only on podman's network), and a SENTINEL file on this
machine at the same path as the remote guest's disk.

- a guest that kvmops made on the hypervisor (the module run there, uri qemu:///system, so its
  record says "created") is removed with remove_storage: true through the remote URI: refused
  in check mode and for real, before anything; the local sentinel stays byte for byte, the
  remote guest and its disk stay (today's main unlinked the local file);
- a new guest with a file disk, a cloud-init seed or a serial log file through the remote URI:
  refused in check mode and for real; nothing on either side (no domain there, no file here
  or there);
- a guest whose disks are pool volumes keeps working through the same URI: check mode (nothing
  made), real, re-run changed=false, absent with remove_storage (the volume goes, there).
Traffic goes only to the container's podman address. `make remote-access` (marker
remote_access), not in `make test`.
"""
import hashlib
import os
import shutil
import subprocess
import uuid

import pytest

from support import ansible_run, containers, faults

pytestmark = pytest.mark.remote_access
SUITE = 'make remote-access'

SENTINEL = b'KVMOPS-SENTINEL: this host\'s file, not the remote guest\'s disk\n' * 64


def _sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def _sh(name, script, check=True):
    proc = containers.podman_exec(name, 'sh', '-c', script)
    if check:
        assert proc.returncode == 0, (script, proc.stdout, proc.stderr)
    return proc


def _virsh(uri, *argv):
    return subprocess.run(['virsh', '-c', uri] + list(argv), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60,
                          check=False)


@pytest.fixture(scope='module')
def remote(tmp_path_factory):
    """(container name, qemu+tcp URI, test prefix, shared path) of a hypervisor container
    whose libvirtd listens on TCP (auth none) on its podman address."""
    prefix = 'kvmops-t-ruri-%s-' % uuid.uuid4().hex[:6]
    shared = '/var/lib/libvirt/images/%sdir' % prefix       # exists on BOTH hosts
    image = containers.image('hypervisor')
    with containers.running(image, prefix) as name:
        _sh(name, 'echo \'auth_tcp = "none"\' >> /etc/libvirt/libvirtd.conf && '
                  'systemctl stop libvirtd.service; systemctl start libvirtd-tcp.socket && '
                  'systemctl start libvirtd.service && mkdir -p %s /var/lib/%spool && '
                  'virsh pool-define-as %spool dir --target /var/lib/%spool >/dev/null && '
                  'virsh pool-start %spool >/dev/null' % ((shared,) + (prefix,) * 4))
        uri = 'qemu+tcp://%s/system' % containers.address(name)
        assert _virsh(uri, 'uri').returncode == 0
        os.makedirs(shared)
        try:
            yield {'name': name, 'uri': uri, 'prefix': prefix, 'shared': shared,
                   'pool': prefix + 'pool', 'inventory': containers.write_inventory(
                       str(tmp_path_factory.mktemp('inv') / 'inv.json'), name)}
        finally:
            shutil.rmtree(shared, ignore_errors=True)


def _guest(name, disks, **extra):
    args = dict(name=name, memory=128, vcpus=1, virt_type='qemu', os_variant='linux',
                networks=[], graphics={'type': 'none'}, state='stopped', disks=disks)
    args.update(extra)
    return args


def _remote_domains(r):
    out = _virsh(r['uri'], 'list', '--all', '--name').stdout.split()
    return sorted(n for n in out if n.startswith(r['prefix']))


def _remote_files(r, path):
    return sorted(_sh(r['name'], 'ls -A %s' % path).stdout.split())


def test_remove_storage_through_a_remote_uri_keeps_the_local_sentinel(remote, request):
    r = remote
    guest = r['prefix'] + 'made-there'
    disk = os.path.join(r['shared'], 'disk.img')
    # kvmops makes the guest ON the hypervisor (its record: the disk was created by kvmops).
    made = ansible_run.run_module('virt_install_domain', dict(_guest(guest, [
        {'path': disk, 'size': 1, 'format': 'raw'}]), uri='qemu:///system'),
        host=r['name'], inventory=r['inventory'])
    assert made.get('changed') and not made.get('failed'), made
    with open(disk, 'wb') as f:                       # this host's file at the same path
        f.write(SENTINEL)
    before = _sha(disk)
    # An external snapshot's overlay paths are checked (and removed after a merge) here: refused.
    external = {'uri': r['uri'], 'domain': guest, 'name': 's1', 'kind': 'external'}
    snaps = ansible_run.run_tasks([
        {'kvmops.hypervisor.virt_snapshot': external, 'check_mode': True},
        {'kvmops.hypervisor.virt_snapshot': external},
    ], ignore_errors=True)
    for res in snaps:
        assert res.get('failed') and not res.get('changed'), res
        assert 'kind=external' in res['msg'] and 'kind: internal' in res['msg'], res['msg']
    assert _virsh(r['uri'], 'snapshot-list', guest, '--name').stdout.strip() == ''
    absent = dict(name=guest, state='absent', remove_storage=True, uri=r['uri'])
    results = ansible_run.run_tasks([
        {'kvmops.hypervisor.virt_install_domain': absent, 'check_mode': True},
        {'kvmops.hypervisor.virt_install_domain': absent},
    ], ignore_errors=True)
    for res in results:
        assert res.get('failed') and not res.get('changed'), res
        assert 'remove_storage deletes the file disk %s' % disk in res['msg'], res['msg']
        assert 'delegate_to' in res['msg'] and 'uri: qemu:///system' in res['msg']
    assert _sha(disk) == before and os.listdir(r['shared']) == ['disk.img']
    assert _remote_domains(r) == [guest]
    assert _remote_files(r, r['shared']) == ['disk.img']
    # remove_storage: false works through the remote URI: the domain goes, both files stay.
    res = ansible_run.run_module('virt_install_domain', dict(absent, remove_storage=False))
    assert res.get('changed') and not res.get('failed'), res
    assert _remote_domains(r) == [] and _remote_files(r, r['shared']) == ['disk.img']
    assert _sha(disk) == before
    _sh(r['name'], 'rm -f %s' % disk)
    faults.record('remote URI: remove_storage of a kvmops-made file disk through qemu+tcp',
                  'a guest made by kvmops on a podman hypervisor; a SENTINEL file at its disk '
                  'path on this host; state: absent, remove_storage: true, uri: qemu+tcp://'
                  'CONTAINER/system, check mode then real (main: the local sentinel was '
                  'unlinked, the remote disk orphaned)', 2,
                  faults.short(results[1]['msg']), 'the local sentinel byte for byte; the '
                  'remote guest and its disk; remove_storage: false then removed the domain only',
                  SUITE, request.node.nodeid)


def test_file_work_through_a_remote_uri_is_refused_on_both_sides(remote, request):
    r = remote
    pool_disk = {'pool': r['pool'], 'volume': r['prefix'] + 'x.img', 'size': 1}
    here = os.path.join(r['shared'], 'refused')               # exists on both hosts, empty
    os.makedirs(here)
    _sh(r['name'], 'mkdir -p %s' % here)
    seed_dir = os.path.join(here, 'seeds')
    log = '/var/log/libvirt/qemu/%sserial.log' % r['prefix']
    cases = [
        ('disks[0].path', _guest(r['prefix'] + 'file', [
            {'path': os.path.join(r['shared'], 'new.qcow2'), 'size': 1}])),
        ('cloud_init', _guest(r['prefix'] + 'seed', [pool_disk],
                              cloud_init={'hostname': 'x', 'seed_dir': seed_dir})),
        ('serial', _guest(r['prefix'] + 'log', [pool_disk], serial=log)),
    ]
    tasks = []
    for dummy, args in cases:
        args = dict(args, uri=r['uri'])
        tasks += [{'kvmops.hypervisor.virt_install_domain': args, 'check_mode': True},
                  {'kvmops.hypervisor.virt_install_domain': args}]
    tasks.append({'kvmops.hypervisor.virt_install_domains': {
        'uri': r['uri'], 'guests': [dict(cases[0][1], name=r['prefix'] + 'batch')]}})
    results = ansible_run.run_tasks(tasks, ignore_errors=True)
    for i, res in enumerate(results[:-1]):
        option = cases[i // 2][0]
        assert res.get('failed') and not res.get('changed'), res
        assert option in res['msg'] and 'Nothing was changed' in res['msg'], res['msg']
    batch = results[-1]
    assert batch.get('failed') and 'disks[0].path' in str(batch), batch
    assert os.listdir(here) == [] and not os.path.exists(log)
    assert _remote_domains(r) == []
    assert _remote_files(r, here) == []
    assert _sh(r['name'], 'test -e %s' % log, check=False).returncode != 0
    assert _virsh(r['uri'], 'vol-list', r['pool']).stdout.count('.img') == 0
    faults.record('remote URI: new guest with a file disk, a cloud-init seed or a serial log',
                  'virt_install_domain (check mode and real) and virt_install_domains through '
                  'qemu+tcp://CONTAINER/system with disks[].path, cloud_init, serial', 7,
                  faults.short(results[1]['msg']), 'nothing on either host: no domain, no '
                  'image, no seed, no log, no volume', SUITE, request.node.nodeid)


def test_pool_volume_guest_through_a_remote_uri_works(remote, request):
    r = remote
    guest = r['prefix'] + 'vol'
    volume = guest + '.img'
    args = dict(_guest(guest, [{'pool': r['pool'], 'volume': volume, 'size': 1}]), uri=r['uri'])
    results = ansible_run.run_tasks([
        {'kvmops.hypervisor.virt_install_domain': args, 'check_mode': True},
    ])
    assert results[0]['changed'] and _remote_domains(r) == []
    assert volume not in _virsh(r['uri'], 'vol-list', r['pool']).stdout
    faults.record('remote URI: a guest whose disks are pool volumes',
                  'check mode, real, re-run, absent with remove_storage through '
                  'qemu+tcp://CONTAINER/system', 6, 'changed: check True, real True, re-run '
                  'False; absent True/True/False; removed_storage the pool volume',
                  'nothing (the volume deleted there by libvirt); nothing made here', SUITE,
                  request.node.nodeid)
    results = ansible_run.run_tasks([
        {'kvmops.hypervisor.virt_install_domain': args},
        {'kvmops.hypervisor.virt_install_domain': args},
    ])
    assert results[0]['changed'] and not results[1]['changed'], results
    assert _remote_domains(r) == [guest]
    assert volume in _virsh(r['uri'], 'vol-list', r['pool']).stdout
    assert not os.path.exists('/var/lib/%spool' % r['prefix'])      # nothing here
    absent = dict(name=guest, state='absent', remove_storage=True, uri=r['uri'])
    results = ansible_run.run_tasks([
        {'kvmops.hypervisor.virt_install_domain': absent, 'check_mode': True},
        {'kvmops.hypervisor.virt_install_domain': absent},
        {'kvmops.hypervisor.virt_install_domain': absent},
    ])
    assert [res['changed'] for res in results] == [True, True, False], results
    assert results[1]['removed_storage'] == ['%s/%s' % (r['pool'], volume)]
    assert _remote_domains(r) == []
    assert volume not in _virsh(r['uri'], 'vol-list', r['pool']).stdout
    faults.record('remote URI: a guest whose disks are pool volumes',
                  'check mode, real, re-run, absent with remove_storage through '
                  'qemu+tcp://CONTAINER/system', 6, 'changed: check True, real True, re-run '
                  'False; absent True/True/False; removed_storage the pool volume',
                  'nothing (the volume deleted there by libvirt); nothing made here', SUITE,
                  request.node.nodeid)


def test_network_and_internal_snapshot_through_a_remote_uri_work(remote, request):
    """virt_network (its route check reads no local /proc for another host: a warning) and an
    internal snapshot of a pool-volume guest."""
    r = remote
    net = r['prefix'] + 'net'
    bridge = 'kv' + r['prefix'][-7:-1]
    net_args = {'uri': r['uri'], 'name': net, 'forward': 'nat', 'bridge': bridge,
                'autostart': False, 'ipv4': {'address': '10.251.77.1', 'prefix': 24}}
    guest = r['prefix'] + 'snap'
    guest_args = dict(_guest(guest, [{'pool': r['pool'], 'volume': guest + '.qcow2', 'size': 1,
                                      'format': 'qcow2'}]), uri=r['uri'])
    snap = {'uri': r['uri'], 'domain': guest, 'name': 's1', 'kind': 'internal'}
    results = ansible_run.run_tasks([
        {'kvmops.hypervisor.virt_network': net_args, 'check_mode': True},
        {'kvmops.hypervisor.virt_network': net_args},
        {'kvmops.hypervisor.virt_network': net_args},
        {'kvmops.hypervisor.virt_install_domain': guest_args},
        {'kvmops.hypervisor.virt_snapshot': snap, 'check_mode': True},
        {'kvmops.hypervisor.virt_snapshot': snap},
        {'kvmops.hypervisor.virt_snapshot': snap},
        {'kvmops.hypervisor.virt_snapshot': dict(snap, state='absent')},
        {'kvmops.hypervisor.virt_install_domain': {'uri': r['uri'], 'name': guest,
                                                   'state': 'absent', 'remove_storage': True}},
        {'kvmops.hypervisor.virt_network': dict(net_args, state='absent')},
    ], ignore_errors=True)
    changed = [res.get('changed') for res in results]
    failed = [bool(res.get('failed')) for res in results]
    assert failed == [False] * 10, results
    assert changed == [True, True, False, True, True, True, False, True, True, True], changed
    assert any('another host' in w for w in results[1].get('warnings', [])), results[1]
    assert net not in _virsh(r['uri'], 'net-list', '--all', '--name').stdout
    assert _remote_domains(r) == []
    faults.record('remote URI: virt_network and snapshots',
                  'virt_network (check, real, re-run, absent); virt_snapshot internal (check, '
                  'real, re-run, absent) on a pool-volume guest, through '
                  'qemu+tcp://CONTAINER/system', 10,
                  'worked, re-runs unchanged; the route check warned that it could not read '
                  'that host\'s routes',
                  'nothing on either host', SUITE, request.node.nodeid)
