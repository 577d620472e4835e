"""virt_migrate between podman hypervisors (make migration; minutes: not in make test).

Two hypervisor containers per fleet (tests/support/migration_fleet.py): one pair shares a
podman volume on /vm-images (storage: shared), one pair has its own /vm-images each (storage:
copy). The tiny guest prints a counter with its boot id and uptime every 100 ms on its serial
port: after a live move it must go on counting on the target from where it was.
"""
import subprocess
import threading
import time

import pytest

from support import migration_fleet as mf

pytestmark = [pytest.mark.migration]


@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    with mf.fleet(2, shared=True) as names:
        yield names, mf.inventory(str(tmp_path_factory.mktemp('mig') / 'inv.json'), names)


@pytest.fixture(scope='module')
def local(tmp_path_factory):
    with mf.fleet(2, shared=False) as names:
        yield names, mf.inventory(str(tmp_path_factory.mktemp('mig') / 'inv.json'), names)


def domain_identity(host, name):
    """(uuid, macs, disks) as virsh shows them on host."""
    uuid = mf.sh(host, 'virsh', 'domuuid', name).stdout.strip()
    macs = sorted(line.split()[-1] for line in mf.sh(host, 'virsh', 'domiflist', name).stdout.splitlines()[2:] if line.strip())
    disks = sorted(line.split()[-1] for line in mf.sh(host, 'virsh', 'domblklist', name).stdout.splitlines()[2:] if line.strip())
    return uuid, macs, disks


def assert_only_on(host, other, name):
    assert mf.state(host, name) == 'running', mf.state(host, name)
    assert mf.state(other, name) is None, 'the source still has a definition of %s' % name
    assert mf.qemu_processes(other, name) == 0, 'a QEMU process of %s is left on %s' % (name, other)
    assert mf.qemu_processes(host, name) == 1


def assert_kept_counting(source, target, name):
    """The counter, boot id and uptime carried on: no reboot, no reset."""
    before = mf.counts(source, name)
    after = mf.wait_count(target, name, 1)
    after = mf.counts(target, name)
    assert before and after, (before[-2:], after[:2])
    assert after[0][1] == before[-1][1], 'boot id changed: the guest rebooted'
    assert 0 < after[0][0] - before[-1][0] <= 2, 'the counter jumped from %s to %s' % (before[-1], after[0])
    assert after[0][2] >= before[-1][2], 'uptime went back: %s -> %s' % (before[-1], after[0])
    mf.wait_count(target, name, after[-1][0] + 5)


def test_live_move_with_shared_storage(shared):
    (a, b), inv = shared
    mf.start_guest(a, 'mig-s1')
    identity = domain_identity(a, 'mig-s1')
    args = dict(name='mig-s1', dest_uri=mf.uri(b), storage='shared')

    # Check mode: the checks run and pass, nothing moves.
    r, _out = mf.migrate(inv, a, check=True, **args)
    assert not r.get('failed') and r['changed'] and not r['moved'], r
    assert r['checks'] == [{'host': b, 'ok': True, 'reasons': [], 'warnings': []}], r['checks']
    assert mf.state(a, 'mig-s1') == 'running' and mf.state(b, 'mig-s1') is None

    # libvirt 9.0 calls a podman volume local and refuses: the module says how to say "shared".
    r, _out = mf.migrate(inv, a, **args)
    assert r.get('failed') and 'unsafe: true' in r['msg'] and not r['changed'], r
    assert mf.state(a, 'mig-s1') == 'running' and mf.state(b, 'mig-s1') is None

    r, _out = mf.migrate(inv, a, unsafe=True, **args)
    assert not r.get('failed') and r['changed'] and r['moved'] and r['mode'] == 'live', r
    assert any('unsafe: true' in w for w in r.get('warnings', [])), r
    assert r['job']['total_ms'] > 0 and 'downtime_ms' in r['job'], r['job']
    assert r['dest_host'] == b and r['state'] == 'running'
    assert_only_on(b, a, 'mig-s1')
    assert domain_identity(b, 'mig-s1') == identity
    assert_kept_counting(a, b, 'mig-s1')

    # Re-runs: nothing to do (check mode too).
    for check in (True, False):
        r, _out = mf.migrate(inv, a, check=check, unsafe=True, **args)
        assert not r.get('failed') and not r['changed'] and not r['moved'] and r['mode'] == 'none', r

    # And back, with the options users expect.
    r, _out = mf.migrate(inv, b, name='mig-s1', dest_uri=mf.uri(a), storage='shared', unsafe=True, bandwidth=200,
                         auto_converge=True, compression=True, timeout=300, timeout_action='pause')
    assert r['moved'] and set(['auto_converge', 'compressed']) <= set(r['flags']), r
    assert_only_on(a, b, 'mig-s1')
    assert domain_identity(a, 'mig-s1') == identity


def test_a_guest_that_cannot_move_is_refused_before_anything_moves(shared):
    (a, b), inv = shared
    mf.sh(a, 'sh', '-c', 'ip link show br-mig >/dev/null 2>&1 || (ip link add br-mig type bridge && ip link set br-mig up)')
    mf.start_guest(a, 'mig-br', bridge='br-mig', wait=False)
    for check in (True, False):
        r, _out = mf.migrate(inv, a, check=check, name='mig-br', dest_uri=mf.uri(b), storage='shared', unsafe=True)
        assert r.get('failed') and not r['changed'], r
        assert 'has no bridge br-mig' in r['msg'] and 'nothing was changed' in r['msg'], r['msg']
        assert [c['ok'] for c in r['checks']] == [False]
    # More memory than the target has available (the target keeps memory_reserve for itself).
    free_mib = int(mf.sh(b, 'awk', '/MemAvailable/ {print int($2/1024)}', '/proc/meminfo').stdout)
    r, _out = mf.migrate(inv, a, name='mig-br', dest_uri=mf.uri(b), storage='shared', unsafe=True,
                         memory_reserve=free_mib * 2)
    assert r.get('failed') and 'MiB of memory available' in r['msg'], r
    # On neither host: a clear failure.
    r, _out = mf.migrate(inv, a, name='mig-nowhere', dest_uri=mf.uri(b), storage='shared')
    assert r.get('failed') and 'There is no guest mig-nowhere' in r['msg'], r
    assert mf.state(a, 'mig-br') == 'running' and mf.state(b, 'mig-br') is None
    mf.sh(a, 'sh', '-c', 'virsh destroy mig-br; virsh undefine mig-br', check=False)


def test_target_daemon_killed_mid_migration_then_a_rerun_completes(shared):
    (a, b), inv = shared
    mf.start_guest(a, 'mig-kill')
    killed = {}

    def kill_when_the_job_runs():
        # ansible-playbook's start-up takes long on a loaded machine: wait for the job itself.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if 'Unbounded' in mf.sh(a, 'virsh', 'domjobinfo', 'mig-kill', check=False).stdout:
                time.sleep(1)
                killed['pid'] = mf.kill_libvirtd(b)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_when_the_job_runs)
    killer.start()
    try:
        # 8 MiB/s: the 128 MiB guest needs ~15 s, time enough to kill the target's daemon.
        r, _out = mf.migrate(inv, a, name='mig-kill', dest_uri=mf.uri(b), storage='shared', unsafe=True, bandwidth=8)
    finally:
        killer.join()
        assert killed, 'the migration job was never seen'
    try:
        assert r.get('failed') and not r['moved'], r
        assert 'went away' in r['msg'] and 'now running on %s' % a in r['msg'], r['msg']
        assert r['source_log'], r
        assert mf.state(a, 'mig-kill') == 'running' and mf.qemu_processes(a, 'mig-kill') == 1
    finally:
        mf.start_libvirtd(b)
    # The incoming QEMU the dead daemon left on the target (if the move had got that far) is
    # killed by the restarted daemon when it reconnects to it.
    deadline = time.monotonic() + 120
    while mf.qemu_processes(b, 'mig-kill') and time.monotonic() < deadline:
        time.sleep(1)
    assert mf.qemu_processes(b, 'mig-kill') == 0 and mf.state(b, 'mig-kill') is None
    r, _out = mf.migrate(inv, a, name='mig-kill', dest_uri=mf.uri(b), storage='shared', unsafe=True)
    assert r['moved'] and not r.get('failed'), r
    assert_only_on(b, a, 'mig-kill')
    assert_kept_counting(a, b, 'mig-kill')


def podman_pause(name, pause=True):
    subprocess.run(['podman', 'pause' if pause else 'unpause', name], check=True, timeout=120,
                   stdout=subprocess.DEVNULL)


def test_target_paused_mid_migration_then_a_rerun_after_unpause_completes(shared):
    """The target container frozen (podman pause) while the job runs: the source daemon's
    keepalive gives up, the guest still runs on the source, the task names the target that does
    not answer (and returns: the module's own call to it is bounded), a re-run after unpause
    moves it."""
    (a, b), inv = shared
    mf.start_guest(a, 'mig-pause')
    paused = {}

    def pause_when_the_job_runs():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if 'Unbounded' in mf.sh(a, 'virsh', 'domjobinfo', 'mig-pause', check=False).stdout:
                time.sleep(1)
                podman_pause(b)
                paused['at'] = time.monotonic()
                return
            time.sleep(0.2)

    pauser = threading.Thread(target=pause_when_the_job_runs)
    pauser.start()
    r = {}
    try:
        # 8 MiB/s: the 128 MiB guest needs ~15 s, time enough to freeze the target.
        r, _out = mf.migrate(inv, a, timeout=420, name='mig-pause', dest_uri=mf.uri(b), storage='shared',
                             unsafe=True, bandwidth=8)
        ended = time.monotonic()
    finally:
        pauser.join()
        if paused:
            try:
                assert r.get('failed') and not r['moved'], r
                assert 'does not answer' in r['msg'] and b in r['msg'], r['msg']
                assert 'now running on %s' % a in r['msg'], r['msg']
                assert mf.state(a, 'mig-pause') == 'running' and mf.qemu_processes(a, 'mig-pause') == 1
            finally:
                podman_pause(b, pause=False)
    assert paused, 'the migration job was never seen'
    print('paused target: the task failed %.0f s after the pause' % (ended - paused['at']))
    # The incoming QEMU on the target is killed by its daemon once the migration is given up.
    deadline = time.monotonic() + 120
    while (mf.qemu_processes(b, 'mig-pause') or mf.state(b, 'mig-pause') is not None) and time.monotonic() < deadline:
        time.sleep(1)
    assert mf.qemu_processes(b, 'mig-pause') == 0 and mf.state(b, 'mig-pause') is None
    r, _out = mf.migrate(inv, a, name='mig-pause', dest_uri=mf.uri(b), storage='shared', unsafe=True)
    assert r['moved'] and not r.get('failed'), r
    assert_only_on(b, a, 'mig-pause')
    assert_kept_counting(a, b, 'mig-pause')


def write_pattern(host, path):
    mf.sh(host, 'qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 1M 1M', path)


def assert_pattern(host, path):
    proc = mf.sh(host, 'qemu-io', '-r', '-U', '-f', 'qcow2', '-c', 'read -P 0x5a 1M 1M', path, check=False)
    assert proc.returncode == 0 and 'Pattern verification failed' not in proc.stdout, proc.stdout + proc.stderr


def test_live_move_with_copied_storage(local):
    (a, b), inv = local
    path = '/vm-images/mig-c1.qcow2'
    mf.sh(a, 'qemu-img', 'create', '-q', '-f', 'qcow2', path, '64M')
    write_pattern(a, path)
    xml = mf.guest_xml('mig-c1', 128, path)
    mf.sh(a, 'sh', '-c', 'cat > /tmp/g.xml <<EOF\n%s\nEOF\nvirsh define /tmp/g.xml >/dev/null && virsh start mig-c1 >/dev/null' % xml)
    mf.wait_count(a, 'mig-c1', 3)
    identity = domain_identity(a, 'mig-c1')
    args = dict(name='mig-c1', dest_uri=mf.uri(b), storage='copy')

    r, _out = mf.migrate(inv, a, check=True, **args)
    assert r['changed'] and not r['moved'] and r['checks'][0]['ok'], r
    assert mf.sh(b, 'test', '-e', path, check=False).returncode != 0, 'check mode created the target image'

    # storage: shared is refused up front: the image is not on the target.
    r, _out = mf.migrate(inv, a, name='mig-c1', dest_uri=mf.uri(b), storage='shared', unsafe=True)
    assert r.get('failed') and 'not in pool vm-images' in r['msg'], r

    r, _out = mf.migrate(inv, a, **args)
    assert r['moved'] and r['created_volumes'] == [path] and 'non_shared_disk' in r['flags'], r
    assert_only_on(b, a, 'mig-c1')
    assert domain_identity(b, 'mig-c1') == identity
    assert_kept_counting(a, b, 'mig-c1')
    info = mf.sh(b, 'qemu-img', 'info', '-U', path).stdout
    assert 'file format: qcow2' in info and '67108864 bytes' in info, info
    assert_pattern(b, path)
    assert mf.sh(a, 'test', '-f', path, check=False).returncode == 0, 'the source image is kept'

    r, _out = mf.migrate(inv, a, **args)
    assert not r['changed'] and not r.get('failed'), r

    # Back again: the old image on the source is never overwritten.
    r, _out = mf.migrate(inv, b, name='mig-c1', dest_uri=mf.uri(a), storage='copy')
    assert r.get('failed') and 'never overwrites' in r['msg'], r
    assert mf.state(b, 'mig-c1') == 'running'


def test_offline_move_of_a_shut_off_guest_with_copied_storage(local):
    (a, b), inv = local
    path = '/vm-images/mig-off.qcow2'
    mf.sh(a, 'qemu-img', 'create', '-q', '-f', 'qcow2', path, '32M')
    write_pattern(a, path)
    mf.sh(a, 'virsh', 'pool-refresh', 'vm-images')
    xml = mf.guest_xml('mig-off', 128, path)
    mf.sh(a, 'sh', '-c', 'cat > /tmp/g.xml <<EOF\n%s\nEOF\nvirsh define /tmp/g.xml >/dev/null' % xml)
    r, _out = mf.migrate(inv, a, name='mig-off', dest_uri=mf.uri(b), storage='copy')
    assert r['moved'] and r['mode'] == 'offline' and r['state'] == 'stopped', r
    assert mf.state(a, 'mig-off') is None and mf.state(b, 'mig-off') == 'shut off'
    assert_pattern(b, path)
    r, _out = mf.migrate(inv, a, name='mig-off', dest_uri=mf.uri(b), storage='copy')
    assert not r['changed'], r
