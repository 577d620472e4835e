"""Live migration over TLS with real certificates (issues 28 and 31; make migration, minutes).

Two hypervisor containers from the pkihost image (the fleet hypervisor plus what the
libvirt_pki role needs on a host), sharing /vm-images (tests/support/migration_fleet.py):
- before any certificate exists, virt_migrate with tls: true is refused before anything moves,
  in check mode and for real, naming QEMU's missing files in /etc/pki/qemu and the fix;
- the libvirt_pki role (this machine as controller) issues the certificates on both hosts;
- a target whose QEMU server files are gone: libvirt fails the move before the guest leaves the
  source, and the message names the fix;
- with every file in place, a counting tiny guest moves live over qemu+tls:// (libvirt's own
  TLS, the hosts' client certificates) with the TLS flag (QEMU to QEMU): the counter goes on,
  the boot id is the same, the source keeps no definition and no QEMU process.
Traffic goes only to the containers' podman addresses.
"""
import json

import pytest

from support import migration_fleet as mf
from support.ansible_run import run_playbook

pytestmark = [pytest.mark.migration]
GUEST = 'mig-tls'
QEMU_DIR = '/etc/pki/qemu'


def assert_only_on(host, other, name):
    assert mf.state(host, name) == 'running', mf.state(host, name)
    assert mf.state(other, name) is None, 'the source still has a definition of %s' % name
    assert mf.qemu_processes(other, name) == 0, 'a QEMU process of %s is left on %s' % (name, other)
    assert mf.qemu_processes(host, name) == 1


def failures(doc):
    return json.dumps([(t['task']['name'], n, h.get('msg')) for p in doc['plays'] for t in p['tasks']
                       for n, h in t['hosts'].items() if h.get('failed')])[:4000] + doc['_stderr'][-1500:]


def test_live_move_over_tls_with_real_certificates(tmp_path):
    with mf.fleet(2, shared=True, prefix='kvmops-t-migtls-', volume_prefix='kvmops-t-migtlsvol-',
                  recipe='pkihost') as names:
        hv1, hv2 = names
        inv = mf.inventory(str(tmp_path / 'inv.json'), names)
        mf.start_guest(hv1, GUEST)
        tls_uri = 'qemu+tls://%s/system' % hv2

        # No certificates yet: refused before anything moves, check mode too.
        for check in (True, False):
            r, _doc = mf.migrate(inv, hv1, check=check, name=GUEST, dest_uri=mf.uri(hv2), storage='shared',
                                 unsafe=True, tls=True)
            assert r.get('failed') and r.get('refused') and not r['changed'] and not r['moved'], r
            for f in ('ca-cert.pem', 'client-cert.pem', 'client-key.pem'):
                assert '%s/%s' % (QEMU_DIR, f) in r['msg'], r['msg']
            assert 'libvirt_pki' in r['msg'] and 'nothing was changed' in r['msg'], r['msg']
            assert sorted(r['missing_tls_files']) == ['%s/%s' % (QEMU_DIR, f) for f in
                                                      ('ca-cert.pem', 'client-cert.pem', 'client-key.pem')]
        assert mf.state(hv1, GUEST) == 'running' and mf.state(hv2, GUEST) is None

        # The PKI over both hosts (libvirt over TLS, QEMU's files, VNC TLS).
        play = [{'hosts': 'hypervisors', 'gather_facts': False,
                 'vars': {'libvirt_pki_controller_dir': str(tmp_path / 'pki'),
                          'libvirt_pki_organization': 'kvmops-test',
                          'libvirt_pki_firewall_persist': False},
                 'roles': ['kvmops.hypervisor.libvirt_pki']}]
        playbook = tmp_path / 'pki.yml'
        playbook.write_text(json.dumps(play))
        doc = run_playbook(str(playbook), inventory=inv, timeout=1800)
        assert doc['_rc'] == 0, failures(doc)
        assert mf.state(hv1, GUEST) == 'running', 'the guest did not survive the daemon restart'

        # The target lacks QEMU's server files: libvirt fails before the guest leaves the source.
        mf.sh(hv2, 'sh', '-c', 'mkdir -p /root/qemu-pki && mv %s/server-cert.pem %s/server-key.pem /root/qemu-pki/'
              % (QEMU_DIR, QEMU_DIR))
        r, _doc = mf.migrate(inv, hv1, name=GUEST, dest_uri=tls_uri, storage='shared', unsafe=True, tls=True)
        assert r.get('failed') and not r['moved'], r
        assert 'libvirt_pki' in r['msg'] and hv2 in r['msg'], r['msg']
        assert mf.state(hv1, GUEST) == 'running' and mf.state(hv2, GUEST) is None
        assert mf.qemu_processes(hv2, GUEST) == 0
        mf.sh(hv2, 'sh', '-c', 'mv /root/qemu-pki/server-cert.pem /root/qemu-pki/server-key.pem %s/' % QEMU_DIR)

        # Every file in place: the move over TLS.
        r, _doc = mf.migrate(inv, hv1, name=GUEST, dest_uri=tls_uri, storage='shared', unsafe=True, tls=True)
        assert not r.get('failed') and r['changed'] and r['moved'] and r['mode'] == 'live', r
        assert 'tls' in r['flags'] and r['dest_host'] == hv2 and r['state'] == 'running', r
        assert r['job']['total_ms'] > 0, r['job']
        assert_only_on(hv2, hv1, GUEST)
        before = mf.counts(hv1, GUEST)
        after = mf.wait_count(hv2, GUEST, 1)
        assert before and after
        assert after[0][1] == before[-1][1], 'boot id changed: the guest rebooted'
        assert 0 < after[0][0] - before[-1][0] <= 2, 'the counter jumped from %s to %s' % (before[-1], after[0])
        assert after[0][2] >= before[-1][2], 'uptime went back: %s -> %s' % (before[-1], after[0])
        mf.wait_count(hv2, GUEST, after[-1][0] + 5)

        # A re-run: already there.
        r, _doc = mf.migrate(inv, hv1, name=GUEST, dest_uri=tls_uri, storage='shared', unsafe=True, tls=True)
        assert not r.get('failed') and not r['changed'] and not r['moved'], r
