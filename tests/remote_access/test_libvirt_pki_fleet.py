"""libvirt over TLS for real (issue 31), in two podman hypervisors (testbed/images/pkihost.*:
the fleet's hypervisor plus python3-cryptography and certtool), made by the libvirt_pki role
from this machine as controller (`make remote-access`, minutes; not in `make test`).

- check mode on fresh hosts predicts and creates nothing (no CA, no key, no certificate);
- `virsh -c 'qemu+tls://HV/system?pkipath=DIR' list` works from the controller with the
  role's client bundle, and `virsh -c qemu+tls://HV2/system list` from the other hypervisor
  with that host's own client certificate (migration's direction);
- a client certificate from another CA is refused, and one from the same CA whose DN is not in
  tls_allowed_dn_list is refused;
- libvirt's virt-pki-validate finds the CA, the server and the client certificates on each host;
- expiry: certificates issued for 1 day show in the report (libvirt_pki_certificates) with
  about a day left; the next run with the usual lifetime renews them, TLS works again with
  the new certificate served, and libvirtd was not restarted (virt-admin server-update-tls);
- the firewall: libvirt's TLS port 16514/tcp opened with iptables (comment "kvmops libvirt
  TLS"; the containers run no firewalld), not in check mode;
- a re-run changes nothing.
Traffic goes only to the containers' podman addresses.
"""
import contextlib
import json
import os
import re
import shutil
import subprocess

import pytest

from support import containers
from support.ansible_run import run_playbook

pytestmark = pytest.mark.remote_access
ORG = 'kvmops-test'


def _virsh(uri, *argv, timeout=60):
    return subprocess.run(['virsh', '-c', uri] + list(argv), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout,
                          check=False)


def _openssl(*argv, cwd=None):
    proc = subprocess.run(['openssl'] + list(argv), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60, cwd=cwd,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _client_bundle(path, ca_cert, ca_key, cn, org=ORG):
    """A pkipath directory with a client certificate made by hand with openssl (the attacks:
    another CA, or a DN the hypervisors do not admit)."""
    os.makedirs(path)
    key, csr, cert = (os.path.join(path, n) for n in ('clientkey.pem', 'client.csr',
                                                      'clientcert.pem'))
    _openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key)
    _openssl('req', '-new', '-key', key, '-subj', '/O=%s/CN=%s' % (org, cn), '-out', csr)
    ext = os.path.join(path, 'ext.cnf')
    with open(ext, 'w') as f:
        f.write('extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n')
    _openssl('x509', '-req', '-in', csr, '-CA', ca_cert, '-CAkey', ca_key, '-CAcreateserial',
             '-days', '2', '-extfile', ext, '-out', cert)
    return path


def _other_ca(path):
    os.makedirs(path)
    key, cert = os.path.join(path, 'cakey.pem'), os.path.join(path, 'cacert.pem')
    _openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key)
    _openssl('req', '-x509', '-new', '-key', key, '-subj', '/O=%s/CN=%s' % (ORG, ORG), '-days',
             '2', '-out', cert)
    return cert, key


class Fleet(object):
    def __init__(self, tmp, names):
        self.tmp = tmp
        self.names = names
        self.addresses = dict((n, containers.address(n)) for n in names)
        self.controller_dir = os.path.join(tmp, 'controller-pki')
        self.inventory = os.path.join(tmp, 'inventory.json')
        hosts = dict((n, {'ansible_connection': 'containers.podman.podman', 'ansible_host': n,
                          'ansible_python_interpreter': '/usr/bin/python3',
                          'ansible_become': False}) for n in names)
        with open(self.inventory, 'w') as f:
            json.dump({'hypervisors': {'hosts': hosts}}, f)
        self.runs = 0

    def run(self, check=False, **extra):
        self.runs += 1
        play = [{'hosts': 'hypervisors', 'gather_facts': False,
                 'vars': dict({'libvirt_pki_controller_dir': self.controller_dir,
                               'libvirt_pki_organization': ORG,
                               # no iptables-persistent in the image; kvm_host's
                               # firewall_persist.yml has its own tests
                               'libvirt_pki_firewall_persist': False}, **extra),
                 'roles': ['kvmops.hypervisor.libvirt_pki']}]
        playbook = os.path.join(self.tmp, 'play%d.yml' % self.runs)
        with open(playbook, 'w') as f:
            json.dump(play, f)
        return run_playbook(playbook, inventory=self.inventory, check=check, timeout=900)

    @property
    def client_dir(self):
        return os.path.join(self.controller_dir, 'client')

    def uri(self, name, pkipath=None):
        uri = 'qemu+tls://%s/system' % self.addresses[name]
        return uri + ('?pkipath=%s' % pkipath if pkipath else '')

    def exec(self, name, *argv):
        return containers.podman_exec(name, *argv)


def failed(doc):
    return json.dumps([(t['task']['name'], n, h.get('msg'))
                       for p in doc['plays'] for t in p['tasks']
                       for n, h in t['hosts'].items() if h.get('failed')])[:4000] + \
        doc['_stderr'][-2000:]


def changed_tasks(doc):
    return [(t['task']['name'], n) for p in doc['plays'] for t in p['tasks']
            for n, h in t['hosts'].items() if h.get('changed')]


def certificates_fact(doc, host):
    for p in doc['plays']:
        for t in p['tasks']:
            h = t['hosts'].get(host, {})
            facts = h.get('ansible_facts', {})
            if 'libvirt_pki_certificates' in facts:
                return facts['libvirt_pki_certificates']
    raise AssertionError('no libvirt_pki_certificates fact for %s' % host)


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    if not shutil.which('podman'):
        pytest.skip('podman is not installed (testbed/setup_podman.sh installs it)')
    image = containers.image('pkihost')
    with contextlib.ExitStack() as stack:
        names = [stack.enter_context(containers.running(image, 'kvmops-t-remote-access-'))
                 for dummy in range(2)]
        yield Fleet(str(tmp_path_factory.mktemp('remote-access')), names)


def test_check_mode_on_fresh_hosts_creates_nothing(fleet):
    doc = fleet.run(check=True)
    assert doc['_rc'] == 0, failed(doc)
    assert not os.path.exists(fleet.controller_dir)
    for name in fleet.names:
        for path in ('/etc/pki/CA/cacert.pem', '/etc/pki/libvirt/private/serverkey.pem',
                     '/etc/pki/qemu/server-key.pem'):
            assert fleet.exec(name, 'test', '-e', path).returncode != 0, (name, path)
        conf = fleet.exec(name, 'cat', '/etc/libvirt/libvirtd.conf').stdout
        # (libvirt's commented example "#tls_allowed_dn_list = [...]" stays)
        assert not re.search(r'^\s*tls_allowed_dn_list\s*=', conf, re.M), conf
        assert 'kvmops libvirt TLS' not in fleet.exec(name, 'iptables', '-S', 'INPUT').stdout


def test_one_day_certificates_are_reported(fleet):
    doc = fleet.run(libvirt_pki_cert_days=1, libvirt_pki_renew_days=0)
    assert doc['_rc'] == 0, failed(doc)
    for name in fleet.names:
        certs = dict((c['path'], c) for c in certificates_fact(doc, name))
        assert set(certs) >= {'/etc/pki/CA/cacert.pem', '/etc/pki/libvirt/servercert.pem',
                              '/etc/pki/libvirt/clientcert.pem', '/etc/pki/qemu/server-cert.pem',
                              '/etc/pki/libvirt-vnc/server-cert.pem'}, certs
        assert 0.9 < certs['/etc/pki/libvirt/servercert.pem']['days_left'] <= 1.05, certs
        assert certs['/etc/pki/CA/cacert.pem']['days_left'] > 3000
        rules = fleet.exec(name, 'iptables', '-S', 'INPUT').stdout
        assert any('--dport 16514' in r and 'kvmops libvirt TLS' in r and '-j ACCEPT' in r
                   for r in rules.splitlines()), rules
    assert _virsh(fleet.uri(fleet.names[0], fleet.client_dir), 'list').returncode == 0


def test_tls_from_the_controller_and_between_hypervisors(fleet):
    for name in fleet.names:
        proc = _virsh(fleet.uri(name, fleet.client_dir), 'list', '--all')
        assert proc.returncode == 0 and 'Id' in proc.stdout, (name, proc.stderr)
        proc = _virsh(fleet.uri(name, fleet.client_dir), 'hostname')
        assert proc.stdout.strip() == name, proc.stderr
    hv1, hv2 = fleet.names
    for src, dst in ((hv1, hv2), (hv2, hv1)):
        proc = fleet.exec(src, 'virsh', '-c', 'qemu+tls://%s/system' % fleet.addresses[dst],
                          'hostname')
        assert proc.returncode == 0 and proc.stdout.strip() == dst, (src, dst, proc.stderr)


def test_another_ca_and_an_unlisted_dn_are_refused(fleet):
    name = fleet.names[0]
    other_cert, other_key = _other_ca(os.path.join(fleet.tmp, 'other-ca'))
    foreign = _client_bundle(os.path.join(fleet.tmp, 'foreign'), other_cert, other_key,
                             'kvmops-controller')
    # both CAs in the client's cacert.pem: virsh's own checks pass (its certificate has a known
    # issuer, the server's too), so the refusal is the server's
    with open(os.path.join(foreign, 'cacert.pem'), 'w') as f:
        for path in (os.path.join(fleet.client_dir, 'cacert.pem'), other_cert):
            with open(path) as ca:
                f.write(ca.read())
    proc = _virsh(fleet.uri(name, foreign), 'list')
    assert proc.returncode != 0 and 'Unable to read TLS confirmation' in proc.stderr, proc
    ca = os.path.join(fleet.controller_dir, 'ca')
    unlisted = _client_bundle(os.path.join(fleet.tmp, 'unlisted'),
                              os.path.join(ca, 'cacert.pem'), os.path.join(ca, 'cakey.pem'),
                              'intruder')
    shutil.copy(os.path.join(fleet.client_dir, 'cacert.pem'), unlisted)
    proc = _virsh(fleet.uri(name, unlisted), 'list')
    assert proc.returncode != 0 and 'Unable to read TLS confirmation' in proc.stderr, proc
    # the same files with the right DN work: the refusal is the DN, not the files
    listed = _client_bundle(os.path.join(fleet.tmp, 'listed'), os.path.join(ca, 'cacert.pem'),
                            os.path.join(ca, 'cakey.pem'), 'kvmops-controller')
    shutil.copy(os.path.join(fleet.client_dir, 'cacert.pem'), listed)
    proc = _virsh(fleet.uri(name, listed), 'list')
    assert proc.returncode == 0, proc.stderr


def test_virt_pki_validate_passes_on_each_host(fleet):
    for name in fleet.names:
        proc = fleet.exec(name, 'virt-pki-validate')
        out = proc.stdout
        assert proc.returncode == 0, out + proc.stderr
        assert 'Found CA certificate /etc/pki/CA/cacert.pem for %s' % ORG in out, out
        assert 'Found client certificate /etc/pki/libvirt/clientcert.pem for %s' % name in out
        assert 'Found server certificate /etc/pki/libvirt/servercert.pem for %s' % name in out
        assert 'do not match' not in out and 'does not seem to match' not in out, out
        assert 'Missing' not in out and 'should be' not in out, out
        # The one deliberate difference: virt-pki-validate 9.0 asks for a world-readable
        # client key (chmod 644); the role keeps it 0600 root, because any local user could
        # otherwise connect to the other hypervisors as this one.
        lines = [line for line in out.splitlines()
                 if 'need to be read by client tools' in line or 'chmod 644 /etc/pki/libvirt/private/clientkey.pem' in line]
        assert len(lines) in (0, 2), out


def test_renewal_restarts_nothing_and_tls_works_again(fleet):
    name = fleet.names[0]
    # Debian's libvirtd exits after 120 s without clients (--timeout 120) and a converge takes
    # minutes here: hold a client connection so that MainPID changes only if the role restarts it.
    subprocess.run(['podman', 'exec', '-d', name, 'virsh', 'event', '--all', '--loop'], check=True,
                   stdout=subprocess.DEVNULL, timeout=60)
    pid_before = fleet.exec(name, 'systemctl', 'show', '-p', 'MainPID', '--value',
                            'libvirtd').stdout.strip()
    assert pid_before not in ('', '0'), 'libvirtd does not run'
    doc = fleet.run()
    assert doc['_rc'] == 0, failed(doc)
    for host in fleet.names:
        certs = dict((c['path'], c) for c in certificates_fact(doc, host))
        for path in ('/etc/pki/libvirt/servercert.pem', '/etc/pki/libvirt/clientcert.pem',
                     '/etc/pki/qemu/server-cert.pem', '/etc/pki/libvirt-vnc/server-cert.pem'):
            assert certs[path]['days_left'] > 360, (host, certs[path])
    assert fleet.exec(name, 'systemctl', 'show', '-p', 'MainPID', '--value',
                      'libvirtd').stdout.strip() == pid_before
    served = subprocess.run(
        ['openssl', 's_client', '-connect', '%s:16514' % fleet.addresses[name],
         '-cert', os.path.join(fleet.client_dir, 'clientcert.pem'),
         '-key', os.path.join(fleet.client_dir, 'clientkey.pem')],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=60, check=False).stdout
    pem = served[served.index('-----BEGIN CERTIFICATE-----'):
                 served.index('-----END CERTIFICATE-----') + 25]
    enddate = subprocess.run(['openssl', 'x509', '-noout', '-checkend', str(300 * 86400)],
                             input=pem, stdout=subprocess.PIPE, universal_newlines=True,
                             check=False)
    assert enddate.returncode == 0, 'libvirtd still serves the 1-day certificate'
    proc = _virsh(fleet.uri(name, fleet.client_dir), 'list')
    assert proc.returncode == 0, proc.stderr
    hv1, hv2 = fleet.names
    proc = fleet.exec(hv1, 'virsh', '-c', 'qemu+tls://%s/system' % fleet.addresses[hv2], 'list')
    assert proc.returncode == 0, proc.stderr


def test_rerun_changes_nothing(fleet):
    doc = fleet.run()
    assert doc['_rc'] == 0, failed(doc)
    assert changed_tasks(doc) == []
