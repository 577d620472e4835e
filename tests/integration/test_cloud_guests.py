"""Cloud-image guests for real (issue 15): a Debian 12 cloud image built offline
(testbed/images/cloud.*), served from 127.0.0.1, cloned three times with a seed each,
booted under TCG with direct kernel boot (the image has no bootloader).

Traffic rule: nothing here connects to a guest's NAT address. Addresses come from the
network's DHCP leases and from the guest agent (neither sends anything to the guest), the
hostname and key are read through the agent (guest-exec over virtio-serial), and SSH goes to
a passt port forward on 127.0.0.1.
"""
import concurrent.futures
import hashlib
import json
import os
import random
import subprocess
import time

import libvirt
import pytest

from support import paths
from support.sshd import free_port
from support.ansible_run import run_module
from support.guest_agent import agent_exec
from support.http_server import TreeServer

CLOUD_IMAGE = os.path.join(os.environ.get('KVMOPS_CACHE', '/var/cache/kvmops-testbed'),
                           'images', 'cloud')
BOOT_TIMEOUT = int(os.environ.get('KVMOPS_CLOUD_BOOT_TIMEOUT', '1800'))


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope='module')
def cloud_image():
    """The Debian cloud image (built once, cached by recipe: ~90 s on a fresh machine)."""
    subprocess.run([os.path.join(paths.REPO, 'testbed', 'build_debian_image.sh'), 'cloud',
                    '--disk'], check=True, stdout=subprocess.DEVNULL, timeout=1200)
    return {'disk': os.path.join(CLOUD_IMAGE, 'disk.qcow2'),
            'kernel': os.path.join(CLOUD_IMAGE, 'vmlinuz'),
            'initrd': os.path.join(CLOUD_IMAGE, 'initrd.img')}


@pytest.fixture
def served(cloud_image, tmp_path):
    """The image and a SHA256SUMS on a counting HTTP server on 127.0.0.1."""
    root = tmp_path / 'www'
    root.mkdir()
    os.symlink(cloud_image['disk'], str(root / 'debian-12-cloud.qcow2'))
    digest = sha256(cloud_image['disk'])
    (root / 'SHA256SUMS').write_text('%s  debian-12-cloud.qcow2\n' % digest)
    server = TreeServer(str(root))
    yield {'server': server, 'url': server.url + 'debian-12-cloud.qcow2',
           'sums': server.url + 'SHA256SUMS', 'digest': digest}
    server.close()


@pytest.fixture
def small_base(tmp_path):
    """A small qcow2 base image served on 127.0.0.1 (a counting TreeServer)."""
    base = str(tmp_path / 'www' / 'small.qcow2')
    os.makedirs(os.path.dirname(base))
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '64M'], check=True)
    server = TreeServer(os.path.dirname(base))
    yield {'path': base, 'server': server, 'digest': sha256(base)}
    server.close()


@pytest.fixture
def isolated_net(conn, prefix):
    """An isolated libvirt network (DHCP, no forward) of this test, on a free /24."""
    name = prefix + 'net'
    for _attempt in range(20):
        third = random.randint(100, 250)
        xml = ("<network><name>%s</name><bridge name='kvc%s'/>"
               "<ip address='192.168.%d.1' netmask='255.255.255.0'><dhcp>"
               "<range start='192.168.%d.10' end='192.168.%d.99'/></dhcp></ip></network>"
               % (name, prefix[-7:-1], third, third, third))
        try:
            net = conn.networkCreateXML(xml)
            break
        except libvirt.libvirtError:
            continue
    else:
        pytest.fail('no free 192.168.x.0/24 for the test network')
    yield name
    try:
        net.destroy()
    except libvirt.libvirtError:
        pass


@pytest.fixture
def ssh_key(tmp_path):
    key = str(tmp_path / 'id_ed25519')
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key], check=True)
    with open(key + '.pub') as f:
        return {'private': key, 'public': f.read().strip()}


def cloud_args(prefix, image_dir, image, served, net, key, n, **extra):
    name = '%svm%d' % (prefix, n)
    args = dict(
        name=name, memory='768MiB', vcpus=1, virt_type='qemu', os_variant='debian12',
        machine='q35',
        kernel=image['kernel'], initrd=image['initrd'],
        cmdline='root=/dev/vda rw console=ttyS0 net.ifnames=0',
        serial=os.path.join(image_dir, 'vm%d-console.log' % n),
        graphics={'type': 'none'},
        networks=[{'network': net}],
        disks=[{'path': os.path.join(image_dir, 'vm%d.qcow2' % n), 'size': 4,
                'base_image': {'url': served['url'],
                               'checksum': ('sha256:' + served['sums']) if n == 1
                               else 'sha256:' + served['digest'],
                               'cache_dir': os.path.join(image_dir, 'base-cache')}}],
        cloud_init={
            'hostname': 'cloud%d' % n,
            'ssh_authorized_keys': [key['public']],
            'password': 'pw-%d-secret' % n,
            'seed_dir': os.path.join(image_dir, 'seeds'),
            'user_data': {'write_files': [{'path': '/etc/kvmops-marker',
                                           'content': 'guest %d\n' % n}]},
            'network_config': {'version': 2, 'ethernets': {
                'eth0': {'dhcp4': True}, 'eth1': {'dhcp4': True}}},
        },
        # Debian 12's libvirt has passt disabled (debian/patches/Disable-passt-support.patch):
        # QEMU's user-mode network forwards 127.0.0.1:PORT to the guest's SSH instead.
        port_forwards=[{'host_port': free_port(), 'guest_port': 22}],
        port_forward_backend='qemu',
        wait_for='ssh', wait_timeout=BOOT_TIMEOUT,
    )
    args.update(extra)
    return args


def ssh(key, port, *command):
    return subprocess.run(
        ['ssh', '-i', key, '-p', str(port), '-o', 'BatchMode=yes',
         '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
         '-o', 'ConnectTimeout=20', '-o', 'LogLevel=ERROR', 'debian@127.0.0.1'] + list(command),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
        check=False)


def assert_ok(res):
    assert not res.get('failed'), res.get('msg', res)
    return res


@pytest.mark.slow
@pytest.mark.cloud
def test_three_cloud_guests_boot_report_addresses_and_accept_ssh(
        conn, prefix, image_dir, cloud_image, served, isolated_net, ssh_key):
    base_before = sha256(cloud_image['disk'])
    all_args = [cloud_args(prefix, image_dir, cloud_image, served, isolated_net, ssh_key, n)
                for n in (1, 2, 3)]

    # check mode: nothing downloaded, no seed, no domain
    res = assert_ok(run_module('virt_install_domain', all_args[0], check=True))
    assert res['changed'] and served['server'].requests == []
    assert not os.path.exists(os.path.join(image_dir, 'seeds'))
    assert not os.path.exists(os.path.join(image_dir, 'base-cache')) or \
        os.listdir(os.path.join(image_dir, 'base-cache')) == []
    assert 'pw-1-secret' not in json.dumps(res)

    # three guests in parallel (one ansible-playbook each, as three hosts' tasks would)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda a: run_module('virt_install_domain', a,
                                                     timeout=BOOT_TIMEOUT + 300), all_args))
    elapsed = time.monotonic() - started
    print('three cloud guests SSH-ready in %.0f s' % elapsed)
    for n, (args, res) in enumerate(zip(all_args, results), 1):
        assert_ok(res)
        assert 'pw-%d-secret' % n not in json.dumps(res)
        assert res['ansible_host'] == '127.0.0.1'
        assert res['ansible_port'] == args['port_forwards'][0]['host_port']
        assert res['ssh_banner'].startswith('SSH-2.0-OpenSSH')
        assert res['cloud_init']['status'] == 'built' and res['guest_agent'] is True
        nat = res['interfaces'][0]
        assert nat['network'] == isolated_net
        by_source = {}
        for a in nat['addresses']:
            if a['family'] == 'ipv4':
                by_source[a['source']] = a['address']
        assert by_source.get('lease') and by_source.get('lease') == by_source.get('agent'), nat
    # the base was downloaded once (one GET of the image, one of SHA256SUMS)
    image_gets = [r for r in served['server'].requests if r.endswith('.qcow2')]
    assert len(image_gets) == 1, served['server'].requests

    for n, (args, res) in enumerate(zip(all_args, results), 1):
        dom = conn.lookupByName(args['name'])
        # through the agent (no network): hostname, authorized key, write_files
        rc, out, _err = agent_exec(dom, '/usr/bin/hostname')
        assert (rc, out.strip()) == (0, 'cloud%d' % n)
        rc, out, _err = agent_exec(dom, '/usr/bin/cat', '/home/debian/.ssh/authorized_keys')
        assert rc == 0 and ssh_key['public'] in out
        rc, out, _err = agent_exec(dom, '/usr/bin/cat', '/etc/kvmops-marker')
        assert out == 'guest %d\n' % n
        # SSH answers after cloud-init's init stage; the password is set in its config stage
        agent_exec(dom, '/usr/bin/cloud-init', 'status', '--wait', timeout=BOOT_TIMEOUT)
        rc, out, _err = agent_exec(dom, '/usr/bin/grep', '^debian:', '/etc/shadow')
        assert '$6$' in out and 'pw-%d-secret' % n not in out
        # SSH with the injected key, through the passt forward on 127.0.0.1
        proc = ssh(ssh_key['private'], res['ansible_port'], 'hostname')
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == 'cloud%d' % n
        # the seed: label cidata, no clear-text password, readable by QEMU's group only
        seed = res['cloud_init']['seed']
        st = os.stat(seed)
        assert oct(st.st_mode & 0o777) == '0o640'
        with open(os.path.join(os.path.dirname(seed), 'user-data')) as f:
            assert 'pw-%d-secret' % n not in f.read()
        assert 'cidata' in subprocess.run(['xorriso', '-indev', seed, '-pvd_info'],
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          universal_newlines=True, check=False).stdout

    # the base image was never written to: the original and the cached copy are unchanged
    cached = results[0]['base_images'][0]['path']
    assert sha256(cloud_image['disk']) == base_before == sha256(cached)
    assert os.stat(cached).st_mode & 0o777 == 0o440  # root and QEMU's group (issue 26)

    # re-run: nothing changes, no seed rebuilt, nothing fetched
    seed = results[0]['cloud_init']['seed']
    mtime = os.stat(seed).st_mtime_ns
    requests = len(served['server'].requests)
    again = assert_ok(run_module('virt_install_domain', dict(all_args[0], wait_for='none')))
    assert not again['changed'], again['actions']
    assert again['cloud_init']['status'] == 'unchanged'
    assert os.stat(seed).st_mtime_ns == mtime and len(served['server'].requests) == requests

    # changed user-data: drift reported in check mode (nothing rebuilt), then rebuilt
    changed = dict(all_args[0], wait_for='none')
    changed['cloud_init'] = dict(changed['cloud_init'], user_data={'write_files': [
        {'path': '/etc/kvmops-marker', 'content': 'changed\n'}]})
    res = assert_ok(run_module('virt_install_domain', changed, check=True))
    assert res['changed'] and 'cloud_init.user-data' in [d['item'] for d in res['differences']]
    assert os.stat(seed).st_mtime_ns == mtime
    res = assert_ok(run_module('virt_install_domain', changed))
    assert res['changed'] and res['cloud_init']['status'] == 'rebuilt'
    assert res['cloud_init']['changed_files'] == ['user-data']
    assert any('instance-id' in w for w in res.get('warnings', []))
    assert os.stat(seed).st_mtime_ns != mtime

    # absent with remove_storage: the clone and the seed go, the shared base stays
    res = assert_ok(run_module('virt_install_domain', dict(name=all_args[0]['name'],
                                                           state='absent', remove_storage=True,
                                                           cloud_init=all_args[0]['cloud_init'])))
    assert not os.path.exists(os.path.dirname(seed))
    assert not os.path.exists(all_args[0]['disks'][0]['path'])
    assert os.path.exists(cached) and sha256(cached) == base_before


@pytest.mark.slow
@pytest.mark.cloud
def test_two_cloud_guests_boot_side_by_side_in_one_virt_install_domains_run(
        conn, prefix, image_dir, cloud_image, served, isolated_net, ssh_key):
    """The guests role's way: one virt_install_domains task, each guest's worker waiting for
    its own SSH; the base is downloaded once for both."""
    guests = [cloud_args(prefix, image_dir, cloud_image, served, isolated_net, ssh_key, n)
              for n in (1, 2)]
    started = time.monotonic()
    res = assert_ok(run_module('virt_install_domains', {'guests': guests, 'parallel': 2},
                               timeout=BOOT_TIMEOUT + 300))
    print('two cloud guests SSH-ready in one task in %.0f s' % (time.monotonic() - started))
    assert res['summary']['changed_guests'] == [g['name'] for g in guests]
    assert len([r for r in served['server'].requests if r.endswith('.qcow2')]) == 1
    for n, (g, r) in enumerate(zip(guests, res['guests']), 1):
        assert 'pw-%d-secret' % n not in json.dumps(r)
        assert r['ansible_host'] == '127.0.0.1'
        assert r['ansible_port'] == g['port_forwards'][0]['host_port']
        assert r['ssh_banner'].startswith('SSH-2.0-OpenSSH')
        proc = ssh(ssh_key['private'], r['ansible_port'], 'hostname')
        assert proc.returncode == 0 and proc.stdout.strip() == 'cloud%d' % n, proc.stderr
    again = assert_ok(run_module('virt_install_domains', {'guests': [
        dict(g, wait_for='none') for g in guests]}))
    assert not again['changed'], [r['actions'] for r in again['guests']]
    assert_ok(run_module('virt_install_domains', {
        'defaults': {'state': 'absent', 'remove_storage': True},
        'guests': [{'name': g['name'], 'cloud_init': g['cloud_init']} for g in guests]}))


def test_cloud_inputs_rejected_without_side_effects(conn, prefix, image_dir, cloud_image,
                                                    served, isolated_net, ssh_key):
    args = cloud_args(prefix, image_dir, cloud_image, served, isolated_net, ssh_key, 2,
                      wait_for='none', state='present')
    cache = os.path.join(image_dir, 'base-cache')
    seeds = os.path.join(image_dir, 'seeds')

    def nothing_left():
        assert not os.path.exists(seeds) or os.listdir(seeds) == []
        assert not os.path.exists(cache) or os.listdir(cache) == []
        assert not os.path.exists(args['disks'][0]['path'])
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByName(args['name'])

    def with_disk(**base):
        a = dict(args)
        base_image = dict(args['disks'][0]['base_image'], **base)
        a['disks'] = [dict(args['disks'][0], base_image=base_image)]
        return a

    # wrong checksum: downloaded, refused, nothing cached
    res = run_module('virt_install_domain', with_disk(checksum='sha256:' + '0' * 64))
    assert res.get('failed') and 'does not match its checksum' in res['msg'], res
    nothing_left()
    # unreachable URL (a closed port on 127.0.0.1)
    res = run_module('virt_install_domain',
                     with_disk(url='http://127.0.0.1:%d/x.qcow2' % free_port(), timeout=5))
    assert res.get('failed') and 'Cannot reach' in res['msg'], res
    nothing_left()
    # missing base image on the server
    res = run_module('virt_install_domain', with_disk(url=served['server'].url + 'missing.qcow2'))
    assert res.get('failed') and 'does not exist' in res['msg'], res
    nothing_left()
    # user-data that is not valid YAML
    bad = dict(args, cloud_init=dict(args['cloud_init'],
                                     user_data='#cloud-config\nwrite_files: [unclosed\n'))
    res = run_module('virt_install_domain', bad)
    assert res.get('failed') and 'not valid YAML' in res['msg'], res
    nothing_left()
    # a clear-text password in user-data: a warning (checked in check mode: no side effects)
    clear = dict(args, cloud_init=dict(args['cloud_init'], password=None,
                                       user_data={'password': 'hunter2'}))
    res = assert_ok(run_module('virt_install_domain', clear, check=True))
    assert any('clear text' in w for w in res.get('warnings', [])), res
    nothing_left()
    assert served['server'].requests.count('/debian-12-cloud.qcow2') == 1  # only the bad sum


def test_cloud_definition_rerun_drift_and_absent_without_booting(conn, prefix, image_dir,
                                                                 small_base, isolated_net,
                                                                 ssh_key):
    """The idempotence and drift half of the story, fast: a defined (not started) cloud guest
    from a small qcow2 base served on 127.0.0.1. No guest boots here; make cloud-guests boots."""
    base, server, digest = small_base['path'], small_base['server'], small_base['digest']
    args = dict(
        name=prefix + 'def', memory='256MiB', virt_type='qemu', os_variant='debian12',
        state='present', graphics={'type': 'none'}, networks=[{'network': isolated_net}],
        disks=[{'path': os.path.join(image_dir, 'def.qcow2'), 'size': 1,
                'base_image': {'url': server.url + 'small.qcow2',
                               'checksum': 'sha256:' + digest,
                               'cache_dir': os.path.join(image_dir, 'base-cache')}}],
        cloud_init={'hostname': 'def1', 'ssh_authorized_keys': [ssh_key['public']],
                    'password': 'not-in-results', 'user_data': {'packages': ['htop']},
                    'seed_dir': os.path.join(image_dir, 'seeds')},
        port_forwards=[{'host_port': free_port(), 'guest_port': 22}],
        port_forward_backend='qemu')
    res = assert_ok(run_module('virt_install_domain', args, check=True))
    assert res['changed'] and server.requests == []
    assert not os.path.exists(os.path.join(image_dir, 'seeds'))
    res = assert_ok(run_module('virt_install_domain', args, diff=True))
    assert res['changed'] and res['cloud_init']['status'] == 'built'
    assert 'not-in-results' not in json.dumps(res)
    assert res['base_images'][0]['fetched'] is True
    cached = res['base_images'][0]['path']
    xml = conn.lookupByName(args['name']).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert 'org.qemu.guest_agent.0' in xml and 'hostfwd=tcp:127.0.0.1:' in xml
    assert "<readonly/>" in xml and 'cidata.iso' in xml
    seed = res['cloud_init']['seed']
    mtime = os.stat(seed).st_mtime_ns
    overlay = subprocess.run(['qemu-img', 'info', '--output=json', args['disks'][0]['path']],
                             stdout=subprocess.PIPE, check=True).stdout
    info = json.loads(overlay)
    assert info['virtual-size'] == 1024 ** 3  # grown to size
    assert info['full-backing-filename'] == res['base_images'][0]['path']
    # re-run: nothing, not even the password hash, changes
    again = assert_ok(run_module('virt_install_domain', args))
    assert not again['changed'], again['actions']
    assert again['cloud_init']['status'] == 'unchanged'
    assert os.stat(seed).st_mtime_ns == mtime
    # a changed user-data: drift in check mode (nothing rebuilt), then rebuilt
    changed = dict(args, cloud_init=dict(args['cloud_init'], user_data={'packages': ['vim']}))
    res = assert_ok(run_module('virt_install_domain', changed, check=True))
    assert res['changed'] and [d['item'] for d in res['differences']] == ['cloud_init.user-data']
    assert os.stat(seed).st_mtime_ns == mtime
    res = assert_ok(run_module('virt_install_domain', changed))
    assert res['cloud_init']['status'] == 'rebuilt'
    assert res['cloud_init']['changed_files'] == ['user-data']
    assert any('instance-id' in w for w in res.get('warnings', []))
    assert not assert_ok(run_module('virt_install_domain', changed))['changed']
    # the base was never written to
    assert sha256(base) == digest == sha256(cached)
    # absent with remove_storage: the clone and the seed go, the cached base stays
    res = assert_ok(run_module('virt_install_domain', dict(
        name=args['name'], state='absent', remove_storage=True,
        cloud_init=args['cloud_init'])))
    assert not os.path.exists(os.path.dirname(seed))
    assert not os.path.exists(args['disks'][0]['path'])
    assert len(os.listdir(os.path.join(image_dir, 'base-cache'))) == 1


def test_cloud_guests_in_one_virt_install_domains_run_share_one_base_download(
        conn, prefix, image_dir, small_base, isolated_net, ssh_key):
    """Three cloud guests (clone, seed, agent channel, port forward) defined side by side by
    virt_install_domains from one base image on 127.0.0.1: the base is fetched once, each
    seed is its own, a re-run changes nothing, absent removes clones and seeds. No guest
    boots here (state: present); make cloud-guests boots the single module's guests."""
    base, server, digest = small_base['path'], small_base['server'], small_base['digest']
    defaults = dict(memory='256MiB', virt_type='qemu', os_variant='debian12',
                    state='present', graphics={'type': 'none'},
                    networks=[{'network': isolated_net}], port_forward_backend='qemu')
    guests = [dict(
        name='%sb%d' % (prefix, n),
        disks=[{'path': os.path.join(image_dir, 'b%d.qcow2' % n), 'size': 1,
                'base_image': {'url': server.url + 'small.qcow2',
                               'checksum': 'sha256:' + digest,
                               'cache_dir': os.path.join(image_dir, 'base-cache')}}],
        cloud_init={'hostname': 'b%d' % n, 'ssh_authorized_keys': [ssh_key['public']],
                    'password': 'batch-pw-%d' % n,
                    'seed_dir': os.path.join(image_dir, 'seeds')},
        port_forwards=[{'host_port': free_port(), 'guest_port': 22}])
        for n in (1, 2, 3)]
    args = {'defaults': defaults, 'guests': guests, 'parallel': 3}
    res = assert_ok(run_module('virt_install_domains', args, check=True))
    assert res['summary']['changed'] == 3 and server.requests == []
    assert not os.path.exists(os.path.join(image_dir, 'seeds'))
    res = assert_ok(run_module('virt_install_domains', args))
    assert res['summary']['changed_guests'] == [g['name'] for g in guests]
    assert server.requests == ['/small.qcow2']   # one download for the three clones
    assert 'batch-pw-' not in json.dumps(res)
    seeds = set()
    for g, r in zip(guests, res['guests']):
        assert r['cloud_init']['status'] == 'built' and r['guest_agent'] is True
        seeds.add(r['cloud_init']['seed'])
        xml = conn.lookupByName(g['name']).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert 'org.qemu.guest_agent.0' in xml and 'hostfwd=tcp:127.0.0.1:%d-:22' % \
            g['port_forwards'][0]['host_port'] in xml
        info = json.loads(subprocess.run(['qemu-img', 'info', '--output=json',
                                          g['disks'][0]['path']],
                                         stdout=subprocess.PIPE, check=True).stdout)
        assert info['full-backing-filename'] == r['base_images'][0]['path']
    assert len(seeds) == 3
    again = assert_ok(run_module('virt_install_domains', args))
    assert not again['changed'], [r['actions'] for r in again['guests']]
    gone = assert_ok(run_module('virt_install_domains', {
        'defaults': {'state': 'absent', 'remove_storage': True},
        'guests': [{'name': g['name'], 'cloud_init': g['cloud_init']} for g in guests]}))
    assert gone['summary']['changed'] == 3
    assert not any(os.path.exists(g['disks'][0]['path']) for g in guests)
    assert os.listdir(os.path.join(image_dir, 'seeds')) == []
    assert sha256(base) == digest
