"""playbooks/site.yml and the roles' argument specs, against this machine.

The full converge (real run, idempotence, verification) is the molecule scenario
(`make molecule`); these tests cover what molecule does not: check mode on a clean host, and
bad role variables.
"""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media

from support import paths
from support.sshd import free_port
from support.ansible_run import run_playbook

SITE = os.path.join(paths.REPO, 'playbooks', 'site.yml')
DEMO_INVENTORY = os.path.join(paths.REPO, 'inventories', 'demo')


@contextlib.contextmanager
def serve(directory):
    """Serve a directory over HTTP on 127.0.0.1 while the block runs; yield the port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, '-m', 'http.server', '--bind', '127.0.0.1',
                             '--directory', directory, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(('127.0.0.1', port), 0.2):
                break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


# The networks site.yml's kvm_host manages with the demo inventory (kvm_host_default_network_name;
# the host-bridge network only exists with a bridge configured, which the demo does not).
SITE_NETWORKS = ('default',)


def host_snapshot(conn, prefix, location):
    """What site.yml could change on this host, read without the collection: only what this
    test's play names or would make (the shared libvirtd and SELinux store see other tests'
    networks and rules come and go meanwhile; those are not this play's doing)."""
    mine = prefix.rstrip('-')
    with open('/etc/libvirt/qemu.conf', 'rb') as f:
        qemu_conf = f.read()
    nets = {n.name(): (n.isActive(), n.autostart()) for n in conn.listAllNetworks()
            if n.name() in SITE_NETWORKS or n.name().startswith(mine)}
    rules = subprocess.run(['semanage', 'fcontext', '-l', '-C'], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, universal_newlines=True, check=False).stdout
    rules = [line for line in rules.splitlines() if mine in line]
    # the install cache entry of this test's install tree (its URL names a port of its own)
    entry = media.cache_path(None, *media.classify_location(location), arch='x86_64')
    kvm = os.stat('/dev/kvm') if os.path.exists('/dev/kvm') else None
    return {'qemu.conf': qemu_conf, 'networks': nets, 'selinux rules': rules,
            'install cache entry': os.path.exists(entry),
            'dev kvm': (kvm.st_mode, kvm.st_gid) if kvm else None}


def stats(doc):
    return doc['stats']['localhost']


def tasks(doc):
    for play in doc['plays']:
        for task in play['tasks']:
            # the json callback names role tasks "<role> : <name>"
            yield task['task']['name'].split(' : ')[-1], task['hosts'].get('localhost', {})


def test_site_check_mode_on_a_clean_host_fails_nothing_and_changes_nothing(conn, prefix, tiny, image_dir):
    new_dir = '/srv/' + prefix.rstrip('-')      # the image directory the play would create
    demo_guest = prefix + 'demo'                 # its disk goes there: cannot be checked yet
    other_guest = prefix + 'other'               # its disk goes to an existing directory
    pool = prefix + 'pool'
    with serve(tiny['tree_rhel']) as port:
        location = 'http://127.0.0.1:%d/' % port
        before = host_snapshot(conn, prefix, location)
        guest = {'memory': 256, 'os_variant': 'linux', 'graphics': {'type': 'vnc'},
                 'install': {'location': location,
                             'extra_args': 'console=ttyS0 kvmops.dhcp=1'}}
        doc = run_playbook(SITE, inventory=DEMO_INVENTORY, check=True, extra_vars={
            'image_storage_dir': new_dir, 'image_storage_pool_name': pool,
            'guests_list': [
                dict(guest, name=demo_guest, disks=[{'path': new_dir + '/demo.img', 'size': 1}]),
                dict(guest, name=other_guest, disks=[{'path': image_dir + '/other.img', 'size': 1}],
                     serial=image_dir + '/other-serial.log'),
            ]})
    assert doc['_rc'] == 0, json.dumps(stats(doc)) + doc['_stderr'][-3000:]
    assert stats(doc)['failures'] == 0 and stats(doc)['unreachable'] == 0

    # Check mode did run the modules and predicted the work (it did not skip everything).
    results = dict(tasks(doc))
    assert results['Gather KVM capability facts']['ansible_facts']['kvm_capability']['domain_type'] == 'qemu'
    assert results['Create the image directory']['changed'] is True
    assert results['Define the storage pool']['changed'] is True
    domains = {r['name']: r for batch in results['Converge the guests with virt_install_domains']['results']
               for r in batch.get('guests', [])}
    assert domains[other_guest]['changed'] is True, domains[other_guest]
    assert demo_guest not in domains  # deferred: its image directory does not exist yet
    summary = results['Show the guests']['msg']
    assert any(line.startswith(demo_guest + ': not checked (check mode)') for line in summary), summary

    # ...and changed nothing.
    assert not os.path.exists(new_dir)
    assert os.listdir(image_dir) == []
    names = [d.name() for d in conn.listAllDomains()]
    assert demo_guest not in names and other_guest not in names
    assert pool not in [p.name() for p in conn.listAllStoragePools()]
    after = host_snapshot(conn, prefix, location)
    assert before['install cache entry'] is False
    for key in before:
        assert after[key] == before[key], key


def _role_play(role, variables):
    play = [{'hosts': 'hypervisors', 'gather_facts': False,
             'roles': [dict({'role': 'kvmops.hypervisor.' + role}, **variables)]}]
    fd, path = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump(play, f)
    return path


@pytest.mark.parametrize('role, variables, expected', [
    ('kvm_host', {'kvm_host_daemon_mode': 'sometimes'},
     ['kvm_host_daemon_mode', 'sometimes', 'auto, monolithic, split']),
    ('kvm_host', {'kvm_host_require_kvm': 'perhaps'},
     ['kvm_host_require_kvm', 'perhaps']),
    ('image_storage', {'image_storage_selinux': 'yes please'},
     ['image_storage_selinux', 'auto, always, required, skip']),
    ('image_storage', {'image_storage_extra_dirs': [{'setype': 'virt_content_t'}]},
     ['path']),
    ('guests', {'guests_list': [{'name': 'x', 'memroy': 512}]},
     ['memroy']),
    ('guests', {'guests_list': [{'name': 'x', 'state': 'on'}]},
     ['state', 'running, stopped, present, absent']),
], ids=['daemon-mode-choice', 'require-kvm-not-bool', 'selinux-choice', 'extra-dir-without-path',
        'guest-option-typo', 'guest-state-choice'])
def test_argument_specs_reject_a_bad_role_variable(role, variables, expected):
    path = _role_play(role, variables)
    try:
        doc = run_playbook(path, inventory=DEMO_INVENTORY, check=True)
    finally:
        os.unlink(path)
    assert doc['_rc'] != 0
    failed = [(name, r) for name, r in tasks(doc) if r.get('failed')]
    assert len(failed) == 1, failed
    name, result = failed[0]
    # The failure is the role's argument validation, before any task of the role ran.
    assert name.startswith('Validating arguments against arg spec'), name
    assert len(list(tasks(doc))) == 1
    for text in expected:
        assert text in result['msg'], result['msg']


def test_kvm_host_stops_with_the_reasons_when_kvm_is_required(conn):
    """This host has a /dev/kvm that cannot run guests: kvm_host_require_kvm=true must stop."""
    path = _role_play('kvm_host', {'kvm_host_require_kvm': True})
    try:
        doc = run_playbook(path, inventory=DEMO_INVENTORY, check=True)
    finally:
        os.unlink(path)
    assert doc['_rc'] != 0
    failed = [(name, r) for name, r in tasks(doc) if r.get('failed')]
    assert [name for name, r in failed] == ['Stop when KVM is required but unusable']
    msg = failed[0][1]['msg']
    assert 'KVM cannot run guests on localhost' in msg
    assert 'vmx/svm' in msg                       # the facts module's reasons are in the message
    assert 'kvm_host_require_kvm=false' in msg    # and how to go on anyway


def test_guide_inventory_is_valid_for_the_roles():
    """The guide's group_vars pass every role's argument spec (the hosts themselves are not
    reachable here, so the play validates the variables only)."""
    group_vars = os.path.join(paths.REPO, 'inventories', 'guide', 'group_vars', 'hypervisors.yml')
    tasks_ = []
    for role in ('kvm_host', 'image_storage', 'guests'):
        spec = os.path.join(paths.REPO, 'roles', role, 'meta', 'argument_specs.yml')
        tasks_.append({
            'name': 'validate ' + role,
            'ansible.builtin.validate_argument_spec': {
                'argument_spec': "{{ (lookup('ansible.builtin.file', '%s') | from_yaml)"
                                 ".argument_specs.main.options }}" % spec}})
    play = [{'hosts': 'localhost', 'gather_facts': False, 'vars_files': [group_vars],
             'tasks': tasks_ + [{'name': 'count guests', 'ansible.builtin.assert': {
                 'that': ["guests_list | map(attribute='name') | list == ['vm1', 'windows1']",
                          "guests_list[0].install.location is match('http')",
                          "'console=ttyS0' in guests_list[0].install.extra_args",
                          "guests_list[1].install.cdrom is match('/vm-images/')",
                          "guests_list[1].graphics.type == 'vnc'",
                          "image_storage_dir == '/vm-images'"]}}]}]
    fd, path = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump(play, f)
    try:
        doc = run_playbook(path)
    finally:
        os.unlink(path)
    assert doc['_rc'] == 0, json.dumps([r for n, r in tasks(doc) if r.get('failed')])[:3000]


@pytest.mark.parametrize('obstacle', ['missing-iso', 'unreachable-iso'])
def test_guests_media_are_checked_before_any_guest_starts(conn, prefix, image_dir, tiny, obstacle):
    """The first guest is fine; the second one's ISO is missing, or sits in a directory QEMU
    cannot enter. The role stops before the first guest is created."""
    hidden = os.path.join(image_dir, 'private')
    os.mkdir(hidden, 0o700)
    iso = os.path.join(hidden if obstacle == 'unreachable-iso' else image_dir, 'install.iso')
    if obstacle == 'unreachable-iso':
        shutil.copy(tiny['iso'], iso)
    good, bad = prefix + 'good', prefix + 'bad'
    path = _role_play('guests', {'guests_list': [
        {'name': good, 'memory': 256, 'os_variant': 'linux', 'kernel': tiny['kernel'],
         'initrd': tiny['initrd'], 'cmdline': 'console=ttyS0', 'networks': [],
         'disks': [{'path': os.path.join(image_dir, 'good.img'), 'size': 1}]},
        {'name': bad, 'memory': 256, 'os_variant': 'linux', 'networks': [],
         'disks': [{'path': os.path.join(image_dir, 'bad.img'), 'size': 1}],
         'install': {'cdrom': iso}},
    ]})
    try:
        doc = run_playbook(path, inventory=DEMO_INVENTORY)
    finally:
        os.unlink(path)
    assert doc['_rc'] != 0
    failed = [(name, r) for name, r in tasks(doc) if r.get('failed')]
    assert len(failed) == 1, failed
    name, result = failed[0]
    assert name == 'Stop before anything starts when a guest is rejected'
    assert result['msg'].startswith('1 of 2 guests cannot be made (%s)' % bad), result['msg']
    if obstacle == 'missing-iso':
        assert '[%s] install.cdrom=%s cannot be used (no such file)' % (bad, iso) in result['msg']
    else:
        assert '[%s] Permission denied ahead' % bad in result['msg']
        assert hidden in result['msg']
    names = [d.name() for d in conn.listAllDomains()]
    assert good not in names and bad not in names
    assert sorted(os.listdir(image_dir)) == ['private']


def test_guests_role_names_every_rejected_guest_with_the_modules_message(conn, prefix, image_dir, tiny):
    """Issue 27 point 2: site.yml's guests play with two bad guests (memory "lots", an ISO
    under /root that QEMU cannot reach) and one good one. The headline is the module's own
    message for every rejected guest, not "Action failed: Unknown error."; nothing is made.
    (The same role as site.yml's guests play; site.yml's kvm_host and image_storage plays
    would edit this host and take a minute: they have their own tests.)"""
    root_dir = tempfile.mkdtemp(prefix=prefix, dir='/root')   # /root is 0700: QEMU is denied
    iso = os.path.join(root_dir, 'install.iso')
    shutil.copy(tiny['iso'], iso)
    good, lots, rooted = prefix + 'good', prefix + 'lots', prefix + 'rooted'

    def guest(name, **extra):
        return dict({'name': name, 'memory': 256, 'os_variant': 'linux', 'networks': [],
                     'disks': [{'path': os.path.join(image_dir, name + '.img'), 'size': 1}]},
                    **extra)
    path = _role_play('guests', {'guests_list': [
        guest(lots, memory='lots'),
        guest(good, kernel=tiny['kernel'], initrd=tiny['initrd'], cmdline='console=ttyS0'),
        guest(rooted, install={'cdrom': iso})]})
    try:
        doc = run_playbook(path, inventory=DEMO_INVENTORY)
    finally:
        os.unlink(path)
        shutil.rmtree(root_dir)
    assert doc['_rc'] != 0
    failed = [(name, r) for name, r in tasks(doc) if r.get('failed')]
    assert [name for name, r in failed] == ['Stop before anything starts when a guest is rejected']
    msg = failed[0][1]['msg']
    assert 'Unknown error' not in json.dumps(doc)
    assert msg.startswith('2 of 3 guests cannot be made (%s, %s); nothing was created' % (lots, rooted)), msg
    # the module's own words, per guest
    assert "[%s] memory='lots' is not a size" % lots in msg
    assert '[%s] Permission denied ahead' % rooted in msg and iso in msg
    assert 'from default of libvirt' not in msg     # issue 27 point 8: the wording
    assert good not in msg
    names = [d.name() for d in conn.listAllDomains()]
    assert not {good, lots, rooted} & set(names)
    assert os.listdir(image_dir) == []
