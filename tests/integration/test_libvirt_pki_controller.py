"""The libvirt_pki role's controller half, in a temporary directory on this machine (seconds):
the CA and the controller's client bundle (tasks_from ca and clients). Check mode on an empty
directory predicts and writes nothing; the real run makes a CA (CN = O = the organisation,
CA:TRUE, key 0600) and a client certificate that openssl verifies against it (clientAuth, the
DN libvirt will be told to admit); a re-run changes nothing; half a CA is refused, naming the
missing file. The hypervisor half runs in podman hypervisors: tests/remote_access."""
import json
import os
import stat
import subprocess

from support.ansible_run import run_playbook


def _include(tasks_from):
    return {'name': tasks_from, 'ansible.builtin.include_role': {
        'name': 'kvmops.hypervisor.libvirt_pki', 'tasks_from': tasks_from}}


def _run(tmp_path, pki, check=False, **extra):
    play = [{'hosts': 'localhost', 'gather_facts': False,
             'vars': dict({'libvirt_pki_controller_dir': str(pki),
                           'libvirt_pki_organization': 'kvmops-test'}, **extra),
             'tasks': [_include('ca'), _include('clients')]}]
    playbook = tmp_path / 'play.yml'
    playbook.write_text(json.dumps(play))
    return run_playbook(str(playbook), check=check, timeout=300)


def _changed(doc):
    return [t['task']['name'] for p in doc['plays'] for t in p['tasks']
            for h in t['hosts'].values() if h.get('changed')]


def _openssl(*argv):
    return subprocess.run(['openssl'] + list(argv), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, check=False)


def test_ca_and_client_bundle(tmp_path):
    pki = tmp_path / 'pki'
    doc = _run(tmp_path, pki, check=True)
    assert doc['_rc'] == 0, doc['_stderr'][-3000:]
    assert not pki.exists()

    doc = _run(tmp_path, pki)
    assert doc['_rc'] == 0, doc['_stderr'][-3000:]
    ca, key = pki / 'ca' / 'cacert.pem', pki / 'ca' / 'cakey.pem'
    client = pki / 'client'
    assert stat.S_IMODE(os.stat(str(key)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(client / 'clientkey.pem')).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(pki / 'ca')).st_mode) == 0o700
    text = _openssl('x509', '-in', str(ca), '-noout', '-text').stdout
    assert 'CA:TRUE' in text and 'Subject: O = kvmops-test, CN = kvmops-test' in text, text
    assert (client / 'cacert.pem').read_bytes() == ca.read_bytes()
    verify = _openssl('verify', '-CAfile', str(ca), '-purpose', 'sslclient',
                      str(client / 'clientcert.pem'))
    assert verify.returncode == 0, verify.stdout
    subject = _openssl('x509', '-in', str(client / 'clientcert.pem'), '-noout', '-subject',
                       '-nameopt', 'RFC2253').stdout
    assert subject.strip() == 'subject=CN=kvmops-controller,O=kvmops-test', subject

    cert_before = (client / 'clientcert.pem').read_bytes()
    doc = _run(tmp_path, pki)
    assert doc['_rc'] == 0 and _changed(doc) == [], _changed(doc)
    assert (client / 'clientcert.pem').read_bytes() == cert_before

    key.unlink()
    doc = _run(tmp_path, pki)
    assert doc['_rc'] != 0
    msg = json.dumps(doc)
    assert 'The CA on the controller is incomplete' in msg and '%s is missing' % key in msg
