"""Unit tests of the cloud options, the devices added to the domain XML and the reach wait
(pure logic; the wait runs against a fake domain replaying recorded libvirt answers and a
real SSH-like banner server on 127.0.0.1)."""
import json
import os
import socket
import threading

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import devices as cm
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import options as co
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import reach
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

DIGEST = 'a' * 64
FIXTURE = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '..', 'fixtures',
                       'addresses', 'tiny-two-nics-no-agent.json')


def params(**kw):
    p = {'name': 'vm1', 'state': 'running',
         'disks': [{'path': '/vm/vm1.qcow2', 'size': 10,
                    'base_image': {'url': 'http://127.0.0.1:8000/deb.qcow2',
                                   'checksum': 'sha256:' + DIGEST, 'cache_dir': '/c'}}],
         'cloud_init': {'hostname': 'vm1', 'seed_dir': '/seeds'}}
    p.update(kw)
    return p


def test_prepare_params_turns_base_image_into_backing_store_and_adds_seed():
    p = params()
    cloud = co.normalize(p)
    out = co.prepare_params(p, cloud)
    root, seed = out['disks']
    assert 'base_image' not in root and root['format'] == 'qcow2'
    assert root['backing_store'].startswith('/c/') and root['backing_store'].endswith('/deb.qcow2')
    assert seed == {'path': '/seeds/vm1/cidata.iso', 'device': 'disk', 'bus': 'virtio',
                    'readonly': True, 'format': 'raw'}
    assert cloud['guest_agent'] is True  # default on for cloud guests
    assert co.normalize(dict(p, cloud_init=None))['guest_agent'] is False


@pytest.mark.parametrize('kw,match', [
    ({'disks': [{'path': '/vm/a.qcow2', 'backing_store': '/b',
                 'base_image': {'url': 'http://x/a', 'checksum': 'sha256:' + DIGEST}}]},
     'both name the base'),
    ({'disks': [{'path': '/vm/a', 'base_image': {'url': 'x.qcow2', 'checksum': 'sha256:' + DIGEST}}]},
     'must be an http'),
    ({'disks': [{'path': '/vm/a', 'base_image': {'url': 'http://x/a', 'checksum': 'md5:abc'}}]},
     'md5'),
    ({'disks': []}, 'cloud_init needs disks'),
    ({'wait_for': 'ssh', 'state': 'stopped'}, 'needs state=running'),
    ({'port_forwards': [{'host_port': 0, 'guest_port': 22}]}, 'port number'),
    ({'wait_timeout': 0}, 'at least 1'),
])
def test_bad_options(kw, match):
    with pytest.raises(KvmopsError, match=match):
        co.normalize(params(**kw))


BASE_XML = "<domain type='qemu'><name>vm1</name><devices><interface type='network'>" \
           "<source network='default'/></interface></devices></domain>"
FWD = [{'host_port': 2222, 'guest_port': 22, 'address': '127.0.0.1', 'proto': 'tcp'}]


def test_passt_nic_and_agent_channel():
    cloud = {'guest_agent': True, 'port_forwards': FWD, 'port_forward_backend': 'passt'}
    tree = cm.add_cloud_devices(lxml_util.parse(BASE_XML), cloud)
    assert cm.has_agent_channel(tree)
    ifaces = tree.findall('devices/interface')
    assert [i.get('type') for i in ifaces] == ['network', 'user']
    assert cm.passt_forwards(tree) == [('tcp', '127.0.0.1', 2222, 22)]
    # adding again does not duplicate the channel
    cm.add_cloud_devices(tree, dict(cloud, port_forwards=[]))
    assert len(tree.findall('devices/channel')) == 1


def test_qemu_user_forwards_round_trip_through_libvirt_style_xml():
    cloud = {'guest_agent': False, 'port_forwards': FWD, 'port_forward_backend': 'qemu'}
    tree = cm.add_cloud_devices(lxml_util.parse(BASE_XML), cloud)
    text = lxml_util.to_string(tree)
    assert 'xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0"' in text
    assert 'hostfwd=tcp:127.0.0.1:2222-:22' in text and 'addr=0x19' in text
    again = lxml_util.parse(text)
    assert cm.qemu_user_forwards(again) == [('tcp', '127.0.0.1', 2222, 22)]
    assert not cm.has_agent_channel(again)
    cm.remove_qemu_user(again)
    assert cm.qemu_user_forwards(again) == []


def test_ssh_endpoint_prefers_forward_then_address():
    assert reach.ssh_endpoint(FWD, '192.168.122.5') == ('127.0.0.1', 2222)
    assert reach.ssh_endpoint([], '192.168.122.5') == ('192.168.122.5', 22)
    assert reach.ssh_endpoint(FWD, None, ssh_host='10.0.0.1', ssh_port=2200) == ('10.0.0.1', 2200)
    assert reach.ssh_endpoint([], None) == (None, None)


@pytest.fixture
def banner_server():
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen(4)

    def serve():
        while True:
            try:
                c, _addr = srv.accept()
            except OSError:
                return
            c.sendall(b'SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n')
            c.close()
    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def test_ssh_banner_real_socket(banner_server):
    assert reach.ssh_banner('127.0.0.1', banner_server) == 'SSH-2.0-OpenSSH_9.2p1 Debian-2'
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))
    port = closed.getsockname()[1]
    closed.close()
    assert reach.ssh_banner('127.0.0.1', port, timeout=1) is None


class Replay(object):
    def __init__(self):
        with open(FIXTURE) as f:
            self.rec = json.load(f)

    def name(self):
        return 'vm1'

    def XMLDesc(self, flags):
        return self.rec['xml']

    def isActive(self):
        return True

    def interfaceAddresses(self, source, flags):
        if source == 0:
            return self.rec['answers']['lease']
        raise RuntimeError('Guest agent is not responding')


class Clock(object):
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_wait_ip_and_ssh(banner_server):
    clock = Clock()
    cloud = {'wait_for': 'ip', 'wait_timeout': 10, 'address_sources': ['lease', 'agent'],
             'port_forwards': []}
    out = reach.wait(None, Replay(), cloud, clock=clock, sleep=clock.sleep, agent_connection=reach.same_connection)
    assert out['ansible_host'] == '192.168.215.23' and 'agent' in out['address_errors']
    ssh = dict(cloud, wait_for='ssh', port_forwards=[dict(FWD[0], host_port=banner_server)])
    out = reach.wait(None, Replay(), ssh, clock=clock, sleep=clock.sleep, agent_connection=reach.same_connection)
    assert (out['ansible_host'], out['ansible_port']) == ('127.0.0.1', banner_server)
    assert out['ssh_banner'].startswith('SSH-2.0')


def test_wait_times_out_with_what_was_seen():
    clock = Clock()
    cloud = {'wait_for': 'ssh', 'wait_timeout': 5, 'address_sources': ['lease', 'agent'],
             'port_forwards': [], 'ssh_host': '127.0.0.1', 'ssh_port': 9}
    with pytest.raises(reach.WaitError) as exc:
        reach.wait(None, Replay(), cloud, clock=clock, sleep=clock.sleep,
                   banner=lambda h, p, timeout=None: None, agent_connection=reach.same_connection)
    msg = str(exc.value)
    assert '127.0.0.1:9' in msg and '192.168.215.23 via lease' in msg and 'wait_timeout=5' in msg


def test_wait_reports_a_lost_daemon():
    class Gone(Replay):
        def XMLDesc(self, flags):
            raise RuntimeError('Cannot write data: Broken pipe')
    clock = Clock()
    cloud = {'wait_for': 'ip', 'wait_timeout': 5, 'address_sources': ['lease'], 'port_forwards': []}
    with pytest.raises(reach.WaitError, match='Lost libvirt.*Broken pipe'):
        reach.wait(None, Gone(), cloud, clock=clock, sleep=clock.sleep, agent_connection=reach.same_connection)
