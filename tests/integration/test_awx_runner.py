"""AWX's path: playbooks/guest.yml through ansible-runner (AWX's engine) with a private data dir
shaped like the one AWX writes for a job (project/, inventory/, env/extravars, env/passwords,
env/settings, env/envvars), against the real libvirtd on this machine.

The survey answers arrive as extra vars, the VNC password among them (a survey question of
type "password"): the job must succeed, its job events must hold every task, and the password
(and the SSH password AWX would put in env/passwords) must appear in no event and no artifact.
"""
import json
import os
import re
import shutil
import subprocess

import libvirt
import pytest
import yaml

from support import paths
from support.http_server import TreeServer

RUNNER = os.path.join(paths.VENV, 'bin', 'ansible-runner')
VNC_SECRET = 'Vn7q!x2Z'          # 8 bytes: VNC's limit
SSH_SECRET = 'kvmops-ssh-Pw-9d41'   # what AWX writes into env/passwords for a machine credential


def private_data_dir(root, extravars):
    """What AWX's task manager writes before it starts ansible-runner for a job."""
    shutil.copytree(os.path.join(paths.REPO, 'playbooks'), os.path.join(root, 'project', 'playbooks'))
    os.makedirs(os.path.join(root, 'inventory'))
    with open(os.path.join(root, 'inventory', 'hosts'), 'w') as f:
        yaml.safe_dump({'all': {'children': {'hypervisors': {'hosts': {'localhost': {
            'ansible_connection': 'local', 'ansible_python_interpreter': paths.TARGET_PYTHON,
            'ansible_become': False}}}}}}, f)
    env = os.path.join(root, 'env')
    os.makedirs(env)
    files = {
        'extravars': extravars,
        'passwords': {r'^SSH [pP]assword:\s*?$': SSH_SECRET},
        'settings': {'job_timeout': 900, 'idle_timeout': 600, 'pexpect_timeout': 10,
                     'suppress_ansible_output': True},
        'envvars': {'ANSIBLE_COLLECTIONS_PATH': paths.COLLECTIONS_DIR,
                    'ANSIBLE_FORCE_COLOR': '0', 'ANSIBLE_DEPRECATION_WARNINGS': '0',
                    'ANSIBLE_LOCALHOST_WARNING': '0',
                    'PATH': os.path.join(paths.VENV, 'bin') + os.pathsep + os.environ['PATH']},
    }
    for name, content in files.items():
        with open(os.path.join(env, name), 'w') as f:
            yaml.safe_dump(content, f)
    return root


def run_job(pdd, ident, playbook='playbooks/guest.yml', timeout=900):
    proc = subprocess.run([RUNNER, 'run', pdd, '-p', playbook, '--ident', ident],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=timeout, check=False)
    artifacts = os.path.join(pdd, 'artifacts', ident)
    with open(os.path.join(artifacts, 'status')) as f:
        status = f.read().strip()
    events = []
    events_dir = os.path.join(artifacts, 'job_events')
    for name in sorted(os.listdir(events_dir), key=lambda n: int(n.split('-')[0])):
        with open(os.path.join(events_dir, name)) as f:
            events.append(json.load(f))
    return status, events, artifacts, proc.stdout


def files_containing(root, secrets):
    """Every file under root whose bytes contain one of the secrets."""
    found = []
    for dirpath, dummy, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, 'rb') as f:
                data = f.read()
            found += ['%s: %s' % (os.path.relpath(path, root), s) for s in secrets if s.encode() in data]
    return found


def listed_tasks(pdd, playbook, extravars_file):
    """The static task list (ansible-playbook --list-tasks), names only."""
    out = subprocess.run(
        [os.path.join(paths.VENV, 'bin', 'ansible-playbook'), '-i', os.path.join(pdd, 'inventory'),
         os.path.join(pdd, 'project', playbook), '--list-tasks', '-e', '@' + extravars_file],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=True,
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=paths.COLLECTIONS_DIR)).stdout
    names = []
    for line in out.splitlines():
        line = line.strip()
        if 'TAGS:' in line and not line.startswith('play #'):
            names.append(line.split('\tTAGS:')[0].strip().split(' : ')[-1])
    return names


@pytest.fixture
def network(conn, prefix):
    """An isolated network of the test's own (the host's default network is not ours to start),
    on a /24 no other network of this machine uses."""
    used = set(re.findall(r"address='(\d+\.\d+\.\d+)\.", ''.join(n.XMLDesc(0) for n in conn.listAllNetworks())))
    third = [i for i in range(30, 250) if '10.217.%d' % i not in used][0]
    name = prefix + 'net'
    conn.networkDefineXML(
        "<network><name>%s</name><bridge name='kv17r%d'/><ip address='10.217.%d.1' netmask='255.255.255.0'/>"
        "</network>" % (name, third, third)).create()
    yield name


@pytest.fixture
def tree(tiny):
    server = TreeServer(tiny['tree_rhel'])
    yield server.url
    server.close()


def survey(prefix, image_dir, tree, network, **extra):
    answers = {'guest_name': prefix + 'awx', 'guest_memory': 256, 'guest_vcpus': 1,
               'guest_disk_size': 1, 'guest_install_location': tree,
               'guest_install_args': 'console=ttyS0', 'guest_image_dir': image_dir,
               'guest_vnc_password': VNC_SECRET, 'guest_network': network}
    answers.update(extra)
    return answers


def test_guest_job_through_ansible_runner_keeps_secrets_out_of_events(conn, prefix, image_dir, tree, network, tmp_path):
    pdd = private_data_dir(str(tmp_path / 'job'), survey(prefix, image_dir, tree, network))
    status, events, artifacts, out = run_job(pdd, 'create')
    assert status == 'successful', out[-4000:]

    # Every task of the playbook has a start event and a result event for the host.
    starts = {e['event_data']['task_uuid']: e['event_data']['task'] for e in events
              if e['event'] == 'playbook_on_task_start'}
    results = {e['event_data']['task_uuid'] for e in events
               if e['event'] in ('runner_on_ok', 'runner_on_skipped', 'runner_on_failed',
                                 'runner_on_unreachable')}
    assert starts and set(starts) <= results, sorted(set(starts.values()) - {starts[u] for u in results})
    started_names = {name.split(' : ')[-1] for name in starts.values()}
    expected = listed_tasks(pdd, 'playbooks/guest.yml', os.path.join(pdd, 'env', 'extravars'))
    assert expected and set(expected) <= started_names, set(expected) - started_names
    assert 'Create, change or remove the guest' in started_names
    stats = [e for e in events if e['event'] == 'playbook_on_stats'][-1]['event_data']
    assert stats['failures'] == {} and stats['dark'] == {} and stats['changed'].get('localhost')

    # The guest exists, runs, and has the password (read back with the secure XML flag).
    dom = conn.lookupByName(prefix + 'awx')
    assert dom.isActive()
    assert ("passwd='%s'" % VNC_SECRET) in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)

    # No secret in any event, in stdout, or in any other artifact (the inputs under env/ excepted).
    leaks = files_containing(artifacts, [VNC_SECRET, SSH_SECRET])
    assert leaks == [], leaks
    assert VNC_SECRET not in json.dumps(events)

    # The same job again: nothing changes.
    status, events, dummy, out = run_job(pdd, 'rerun')
    assert status == 'successful', out[-4000:]
    stats = [e for e in events if e['event'] == 'playbook_on_stats'][-1]['event_data']
    assert stats['changed'] == {}, stats

    # A removal job (survey answer guest_state=absent) removes the guest and its disk.
    with open(os.path.join(pdd, 'env', 'extravars'), 'w') as f:
        yaml.safe_dump(survey(prefix, image_dir, tree, network, guest_state='absent'), f)
    job = run_job(pdd, 'remove')
    assert job[0] == 'successful', job[3][-4000:]
    assert prefix + 'awx' not in [d.name() for d in conn.listAllDomains()]
    assert os.listdir(image_dir) == []


@pytest.mark.parametrize('answers, expected', [
    ({'guest_memory': 'lots'}, ['guest_memory', 'int']),
    ({'guest_state': 'on'}, ['guest_state', 'running, stopped, present, absent']),
    ({'guest_memory': 16}, ['guest_memory 64-1048576 MiB (got 16)']),
    ({'guest_name': 'web 1; rm'}, ['guest_name must be letters']),
    ({'guest_vnc_password': 'far-too-long'}, ['at most 8 characters']),
    ({'guest_image': '/var/lib/libvirt/images/x.qcow2'}, ['exactly one of guest_image or guest_install_location']),
], ids=['memory-not-a-number', 'state-choice', 'memory-range', 'name', 'vnc-password-length',
        'image-and-location'])
def test_bad_survey_answer_stops_the_job_before_anything_changes(conn, prefix, image_dir, tree, network, tmp_path, answers, expected):
    pdd = private_data_dir(str(tmp_path / 'job'), survey(prefix, image_dir, tree, network, **answers))
    status, events, artifacts, out = run_job(pdd, 'bad', timeout=300)
    assert status == 'failed'
    failed = [e for e in events if e['event'] == 'runner_on_failed']
    assert len(failed) == 1, out[-3000:]
    assert failed[0]['event_data']['task'] in ('Check the types and choices of the answers',
                                               'Check the ranges and the name')
    msg = failed[0]['event_data']['res']['msg']
    msg = msg if isinstance(msg, str) else json.dumps(msg)
    for text in expected:
        assert text in msg, msg
    assert 'far-too-long' not in json.dumps(events) and VNC_SECRET not in json.dumps(events)
    assert not [d for d in conn.listAllDomains() if d.name().startswith(prefix)]
    assert os.listdir(image_dir) == []


def test_guests_role_keeps_the_vnc_password_out_of_job_events(conn, prefix, image_dir, tree, network, tmp_path):
    """site.yml's guests role through AWX's engine: a role that looped over guests_list would copy
    each guest (its graphics.password too) into the loop results and so into the job events."""
    pdd = private_data_dir(str(tmp_path / 'job'), {'guests_list': [{
        'name': prefix + 'role', 'memory': 256, 'os_variant': 'linux',
        'disks': [{'path': image_dir + '/role.img', 'size': 1}], 'networks': [{'network': network}],
        'graphics': {'type': 'vnc', 'password': VNC_SECRET},
        'install': {'location': tree, 'extra_args': 'console=ttyS0'}}]})
    with open(os.path.join(pdd, 'project', 'guests_role.yml'), 'w') as f:
        yaml.safe_dump([{'name': 'The guests role alone', 'hosts': 'hypervisors', 'gather_facts': False,
                         'roles': [{'role': 'kvmops.hypervisor.guests'}]}], f)
    status, events, artifacts, out = run_job(pdd, 'role', playbook='guests_role.yml')
    assert status == 'successful', out[-4000:]
    assert files_containing(artifacts, [VNC_SECRET]) == []
