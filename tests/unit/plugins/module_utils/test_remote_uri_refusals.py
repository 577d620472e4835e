"""Issue 26, "What a remote URI means": every module other than the guest ones (those are in
_guest/test_guest_remote.py) refuses this host's file work through another host's libvirt
before anything is read or changed, and keeps working where it needs no local file."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import plan as backup_plan
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import restore
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import locality
from ansible_collections.kvmops.hypervisor.plugins.module_utils._migrate import manager as migrate
from ansible_collections.kvmops.hypervisor.plugins.module_utils._selinux import virt_dir
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import manager as snapshot
from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc.manager import VncListenManager

REMOTE = 'qemu+ssh://root@hv2/system'


class Conn(object):
    def __init__(self, uri):
        self.uri = uri

    def getURI(self):
        return self.uri

    def getHostname(self):
        return 'hv'


def assert_refusal(exc, option):
    msg = str(exc.value)
    assert option in msg and 'hv2' in msg and 'delegate_to' in msg and 'Nothing was changed' in msg


def test_virt_backup_refuses_a_remote_uri_and_takes_the_default():
    with pytest.raises(locality.RemoteUriError) as exc:
        backup_plan.normalize({'uri': REMOTE, 'domain': 'vm1', 'repository': '/r'})
    assert_refusal(exc, 'repository')
    assert backup_plan.normalize({'domain': 'vm1', 'repository': '/r'})['domains'] == ['vm1']
    backup_plan.normalize({'uri': 'qemu:///system', 'domain': 'vm1', 'repository': '/r'})


@pytest.mark.parametrize('action,extra', [('images', {'dest_dir': '/o'}),
                                          ('guest', {'dest_dir': '/o', 'name': 'vm1-r'}),
                                          ('in_place', {})])
def test_restore_refuses_writing_actions_through_a_remote_uri(action, extra):
    params = dict(uri=REMOTE, domain='vm1', repository='/r', action=action, **extra)
    with pytest.raises(locality.RemoteUriError) as exc:
        restore.normalize(params)
    assert_refusal(exc, 'action=%s' % action)


def test_restore_verify_reads_only_the_local_repository():
    assert restore.normalize({'uri': REMOTE, 'domain': 'vm1', 'repository': '/r'})['action'] == 'verify'


def vnc_params(**kw):
    p = dict(uri=REMOTE, scope='host', listen='127.0.0.1', domains=None, tls=None,
             tls_verify=True, tls_cert_dir=None, password=None, auto_unix_socket=None,
             port_min=None, port_max=None, allow_insecure=False, config='/etc/libvirt/qemu.conf',
             backup=False, ssh_user=None, ssh_host='hv1')
    p.update(kw)
    return p


def test_vnc_listen_host_scope_edits_this_hosts_qemu_conf_so_refuses_remote():
    with pytest.raises(KvmopsError) as exc:
        VncListenManager(vnc_params()).validate()
    assert_refusal(exc, 'scope=host')


def test_vnc_listen_domains_scope_public_listen_refused_loopback_kept():
    with pytest.raises(KvmopsError) as exc:
        VncListenManager(vnc_params(scope='domains', domains=['vm1'], listen='0.0.0.0')).validate()
    assert_refusal(exc, 'listen=0.0.0.0')
    VncListenManager(vnc_params(scope='domains', domains=['vm1'])).validate()
    VncListenManager(vnc_params(scope='domains', domains=['vm1'], listen='0.0.0.0',
                                allow_insecure=True)).validate()


def test_selinux_virt_dir_refuses_a_remote_uri():
    with pytest.raises(locality.RemoteUriError) as exc:
        virt_dir.normalize_params({'uri': REMOTE, 'path': '/vm-images'})
    assert_refusal(exc, 'path=/vm-images')


def test_external_snapshot_file_work_refused_internal_kept():
    m = snapshot.SnapshotManager(Conn(REMOTE), {'domain': 'vm1', 'name': 's1'})
    m.require_local_files([], 'x')                       # internal: nothing local
    with pytest.raises(KvmopsError) as exc:
        m.require_local_files([('kind=external', 'checks the overlay paths /vm/a.s1.qcow2')],
                              'use kind: internal')
    assert_refusal(exc, 'kind=external')
    assert exc.value.result['changed'] is False
    local = snapshot.SnapshotManager(Conn('qemu:///system'), {'domain': 'vm1', 'name': 's1'})
    local.require_local_files([('kind=external', 'x')], 'y')


def test_virt_migrate_reads_no_local_log_for_a_remote_source():
    calls = []

    def run_command(argv):
        calls.append(argv)
        return 0, 'x error : from this host\n', ''
    m = migrate.MigrateManager(Conn(REMOTE), {'name': 'vm1', 'source_log': True}, None,
                               run_command=run_command)
    assert m._source_log(0, 0) == [] and calls == []          # pylint: disable=protected-access
    assert m._qemu_log_size('vm1') is None                    # pylint: disable=protected-access
    local = migrate.MigrateManager(Conn('qemu:///system'), {'name': 'vm1', 'source_log': True},
                                   None, run_command=run_command)
    local._source_log(0, None)                                # pylint: disable=protected-access
    assert calls


def test_virt_network_reads_this_hosts_routes_only_for_a_local_uri():
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._network.manager import NetworkManager
    read, warnings = [], []

    def read_file(path):
        read.append(path)
        return ''
    remote = NetworkManager(Conn(REMOTE), {'name': 'n1'}, read_file=read_file, warn=warnings.append)
    assert remote.host_routes() == [] and read == []
    assert 'another host' in warnings[0]
    local = NetworkManager(Conn('qemu:///system'), {'name': 'n1'}, read_file=read_file,
                           warn=warnings.append)
    local.host_routes()
    assert '/proc/net/route' in read and len(warnings) == 1
