"""Unit tests of the cloud-init seed content and password hashing (pure logic)."""
import json

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import password as pw
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed

KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0123456789abcdefghij test@kvmops'


def cfg_of(files):
    ud = files['user-data']
    assert ud.startswith('#cloud-config\n')
    return json.loads(ud.split('\n', 1)[1])


def test_dict_user_data_merged_with_keys_password_hostname():
    files, warnings = seed.build({'user_data': {'packages': ['htop']},
                                  'ssh_authorized_keys': [KEY], 'password': 's3cret',
                                  'hostname': 'web1'}, 'vm-web1')
    cfg = cfg_of(files)
    assert cfg['packages'] == ['htop'] and cfg['ssh_authorized_keys'] == [KEY]
    assert cfg['password'].startswith('$6$') and 's3cret' not in files['user-data']
    assert cfg['chpasswd'] == {'expire': False}
    meta = json.loads(files['meta-data'])
    assert meta == {'instance-id': 'iid-vm-web1', 'local-hostname': 'web1'}
    assert 'network-config' not in files and warnings == []


def test_same_input_same_bytes_and_hash_reused():
    ci = {'password': 's3cret', 'ssh_authorized_keys': [KEY]}
    first, _warnings = seed.build(ci, 'vm1')
    again, _warnings = seed.build(ci, 'vm1', existing=first)
    assert again == first  # a re-run writes nothing
    other, _warnings = seed.build(dict(ci, password='other'), 'vm1', existing=first)
    assert seed.changed_files(other, first) == ['user-data']


def test_text_user_data_parsed_and_invalid_yaml_rejected():
    files, _warnings = seed.build({'user_data': '#cloud-config\nruncmd: [[touch, /x]]\n'}, 'vm1')
    assert cfg_of(files) == {'runcmd': [['touch', '/x']]}
    with pytest.raises(KvmopsError, match='not valid YAML'):
        seed.build({'user_data': '#cloud-config\nruncmd: [unclosed\n'}, 'vm1')
    with pytest.raises(KvmopsError, match="#cloud-config"):
        seed.build({'user_data': 'packages: [htop]\n'}, 'vm1')


def test_script_user_data_passes_through_keys_go_to_meta_data():
    ci = {'user_data': '#!/bin/sh\necho hi\n', 'ssh_authorized_keys': [KEY]}
    files, _warnings = seed.build(ci, 'vm1')
    assert files['user-data'] == '#!/bin/sh\necho hi\n'
    assert json.loads(files['meta-data'])['public-keys'] == [KEY]
    with pytest.raises(KvmopsError, match='cloud-config'):
        seed.build({'user_data': '#!/bin/sh\n', 'password': 'x'}, 'vm1')


@pytest.mark.parametrize('ud,where', [
    ({'password': 'hunter2'}, 'password'),
    ({'users': [{'name': 'a', 'plain_text_passwd': 'x'}]}, 'users[0].plain_text_passwd'),
    ({'chpasswd': {'list': 'root:hunter2\nbob:$6$abc$def'}}, 'chpasswd.list[0]'),
    ({'chpasswd': {'users': [{'name': 'root', 'password': 'x'}]}}, 'chpasswd.users[0].password'),
])
def test_clear_text_password_in_user_data_warns(ud, where):
    _files, warnings = seed.build({'user_data': ud}, 'vm1')
    assert len(warnings) == 1 and where in warnings[0] and 'clear text' in warnings[0]


def test_hashed_password_in_user_data_is_fine():
    _files, warnings = seed.build({'user_data': {'password': '$6$salt$hash',
                                                 'users': [{'passwd': '$6$a$b'}]}}, 'vm1')
    assert warnings == []


def test_network_config_unwrapped_and_checked():
    files, _warnings = seed.build({'network_config': {'network': {'version': 2, 'ethernets': {
        'eth0': {'dhcp4': True}}}}}, 'vm1')
    assert json.loads(files['network-config'])['version'] == 2
    files2, _warnings = seed.build({'network_config': 'version: 1\nconfig: []\n'}, 'vm1')
    assert json.loads(files2['network-config']) == {'version': 1, 'config': []}
    with pytest.raises(KvmopsError, match='version'):
        seed.build({'network_config': {'ethernets': {}}}, 'vm1')


@pytest.mark.parametrize('ci,match', [
    ({'ssh_authorized_keys': ['/root/.ssh/id_rsa.pub']}, 'not an OpenSSH public key'),
    ({'hostname': 'bad_name!'}, 'not a valid host name'),
    ({'password_hash': 'plain'}, 'not a crypt hash'),
    ({'password': 'a', 'password_hash': '$6$a$b'}, 'not both'),
    ({'user_data': 42}, 'dictionary'),
])
def test_bad_input(ci, match):
    with pytest.raises(KvmopsError, match=match):
        seed.build(ci, 'vm1')


def test_instance_id_and_meta_data():
    files, _warnings = seed.build({'instance_id': 'iid-2', 'meta_data': {'x': 1}}, 'vm1')
    assert json.loads(files['meta-data']) == {'instance-id': 'iid-2', 'local-hostname': 'vm1',
                                              'x': 1}


def test_password_hash_verifies_with_crypt_or_openssl(monkeypatch):
    h = pw.hash_password('s3cret')
    assert h.startswith('$6$') and pw.is_hashed(h)
    assert pw.hash_password('s3cret', existing=h) == h
    assert pw.hash_password('other', existing=h) != h
    # Python 3.13 has no crypt: openssl passwd -6 over stdin gives the same hash
    monkeypatch.setattr(pw, '_crypt', None)
    import shutil
    openssl = shutil.which('openssl')
    if openssl:
        assert pw.hash_password('s3cret', existing=h, openssl=openssl) == h
    with pytest.raises(pw.PasswordError, match='password_hash'):
        pw.hash_password('s3cret', openssl=None)


def test_seeds_of_one_batch_written_at_once_share_a_new_parent(tmp_path, monkeypatch):
    """virt_install_domains writes its guests' seeds in threads: the seeds directory, made by
    whichever thread comes first, is no error for the others (CI: "[Errno 17] File exists").
    The directory checks run unhindered in a race: a barrier makes every thread look first."""
    import os
    import threading
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed_store
    if seed_store.iso_tool()[0] is None:
        pytest.skip('no ISO writer (xorriso, genisoimage) on this machine')
    monkeypatch.setattr(seed_store, '_qemu_gid', lambda: None)
    monkeypatch.setattr(seed_store, '_selinux_label', lambda *a, **k: None)
    parent = tmp_path / 'seeds'
    barrier = threading.Barrier(6)
    real_makedirs = os.makedirs

    def makedirs(*args, **kwargs):
        barrier.wait(5)                 # every thread has come this far: the parent is missing
        return real_makedirs(*args, **kwargs)
    monkeypatch.setattr(seed_store.os, 'makedirs', makedirs)
    errors = []

    def one(i):
        try:
            seed_store.write(str(parent / ('g%d' % i)), str(parent / ('g%d' % i) / 'seed.iso'),
                             {'meta-data': 'instance-id: g%d\n' % i, 'user-data': '#cloud-config\n'})
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(os.listdir(str(parent))) == ['g%d' % i for i in range(6)]
