"""Hostile input to the libvirt_guests inventory plugin (issues 26 and 27), tried for real.

- A domain on the real libvirtd whose name and metadata tags carry a Jinja payload that would
  write a sentinel file on the controller: `ansible-inventory --list` and a playbook that uses
  the hostvars, group_names, keyed groups and a compose of them run on ansible-core 2.19 (the
  venv) and 2.17 (testbed/fleet_controller.sh's inventory-controller venv, cached): the
  sentinel never appears and the payload stays text.
- An inventory cache entry is input: a tampered entry with a non-address as ansible_host, a
  shell payload where the old format kept the hop, or another shape, never becomes part of an
  ssh command; ssh arguments are quoted; a cache directory others can write is not used.
- A hypervisor whose listing failed is never cached as "no guests" (libvirt's test driver,
  test:///FILE, stands in for a hypervisor that works and then fails: no daemon).
- Without lxml or libvirt-python on the controller, the message says what to install.
"""
import glob
import json
import os
import re
import shlex
import socket
import subprocess
import threading
import time

import pytest
import yaml

from support import paths

TAG_NS = 'urn:kvmops:hypervisor:tags:1'
UNREACHABLE = 'qemu+ssh://root@127.0.0.1:1/system'   # nothing listens on port 1: refused at once
CONTROLLER_SCRIPT = os.path.join(paths.REPO, 'testbed', 'fleet_controller.sh')
CONTROLLER_REQS = os.path.join(paths.REPO, 'testbed', 'inventory-controller-requirements.txt')


def payload(tag):
    """A template that, rendered, runs a shell on the controller and leaves $HOME/kvmops-pwned-TAG."""
    return "{{ lookup('pipe', 'cd; touch kvmops-pwned-%s') }}" % tag


@pytest.fixture(scope='module')
def controller_217():
    """bin directory of an ansible-core 2.17 controller with libvirt-python and lxml (cached)."""
    proc = subprocess.run([CONTROLLER_SCRIPT, CONTROLLER_REQS], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    venv = proc.stdout.strip().splitlines()[-1]
    out = subprocess.run([os.path.join(venv, 'bin', 'ansible'), '--version'], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    assert 'core 2.17.' in out, out
    return os.path.join(venv, 'bin')


@pytest.fixture(params=['2.19', '2.17'])
def controller(request):
    if request.param == '2.19':
        return os.path.join(paths.VENV, 'bin')
    return request.getfixturevalue('controller_217')


def run(bindir, tool, args, home, extra_env=None, check=True):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=paths.COLLECTIONS_DIR, ANSIBLE_NOCOLOR='1',
               ANSIBLE_INVENTORY_UNPARSED_FAILED='1', HOME=home, ANSIBLE_LOCAL_TEMP=os.path.join(home, 'tmp'),
               ANSIBLE_PYTHON_INTERPRETER='/usr/bin/python3', ANSIBLE_HOME=os.path.join(home, '.ansible'),
               ANSIBLE_DEPRECATION_WARNINGS='0', ANSIBLE_FORCE_COLOR='0')
    env.pop('ANSIBLE_CONFIG', None)
    env.update(extra_env or {})
    proc = subprocess.run([os.path.join(bindir, tool)] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=300,
                          check=False, cwd=home)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def plain(value):
    """ansible-inventory shows unsafe values as {'__ansible_unsafe': v}."""
    if isinstance(value, dict):
        if list(value) == ['__ansible_unsafe']:
            return value['__ansible_unsafe']
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def pwned(home):
    return sorted(glob.glob(os.path.join(home, 'kvmops-pwned-*')))


PLAYBOOK = """
- hosts: libvirt_hypervisor_localhost
  connection: local
  gather_facts: false
  tasks:
    - name: every guest variable, the group names and the host name, used in templates
      ansible.builtin.debug:
        msg: "{{ libvirt_name }} | {{ libvirt_tags }} | {{ group_names }} | {{ inventory_hostname }} | {{ described }} | {{ libvirt_interfaces }}"
    - name: and through hostvars and set_fact
      ansible.builtin.set_fact:
        copied: "{{ hostvars[inventory_hostname]['libvirt_name'] ~ hostvars[inventory_hostname]['libvirt_tags'] | join(',') }}"
    - name: the copy is still the text, used again (2.17 templates it once more here)
      ansible.builtin.debug:
        msg: "{{ copied }}"
    - name: and it is the text
      ansible.builtin.assert:
        that: copied is search('lookup')
"""


def test_template_payloads_from_libvirt_are_never_rendered(conn, prefix, controller, tmp_path):
    home = str(tmp_path / 'home')
    os.makedirs(os.path.join(home, 'tmp'))
    name = prefix + payload('name')
    conn.defineXML(
        "<domain type='qemu'><name>{name}</name><title>{title}</title><description>{desc}</description>"
        "<metadata><k:tags xmlns:k='{ns}'><k:tag>{t1}</k:tag><k:tag>web</k:tag></k:tags></metadata>"
        "<memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>".format(
            name=name.replace("'", '&apos;'), title=payload('title'), desc=payload('description'), ns=TAG_NS,
            t1=payload('tag')))
    config = os.path.join(home, 'libvirt_guests.yml')
    with open(config, 'w') as f:
        yaml.safe_dump({'plugin': 'kvmops.hypervisor.libvirt_guests', 'uris': ['qemu:///system'],
                        'name_pattern': '^' + prefix, 'keyed_groups': [{'key': 'libvirt_tags', 'prefix': 'role'}],
                        'compose': {'described': 'libvirt_name ~ " on " ~ libvirt_hypervisor'}}, f)

    proc = run(controller, 'ansible-inventory', ['-i', config, '--list'], home)
    assert pwned(home) == []
    inv = plain(json.loads(proc.stdout))
    hosts = inv['_meta']['hostvars']
    assert len(hosts) == 1, hosts
    host, hv = list(hosts.items())[0]
    # The host name is the guest's name with everything but [A-Za-z0-9._-] replaced.
    assert host == re.sub(r'[^A-Za-z0-9._-]', '_', name) and '{' not in host
    if controller.endswith('.venv/bin'):
        # 2.19 keeps the data verbatim (it never templates an inventory plugin's strings)
        assert hv['libvirt_name'] == name and payload('tag') in hv['libvirt_tags']
    else:
        # 2.17 loses the unsafe mark when a template joins a hostvars value with other text:
        # the Jinja starts are broken up, and said so
        assert hv['libvirt_name'] == name.replace('{{', '{_{') and payload('tag').replace('{{', '{_{') in hv['libvirt_tags']
        assert 'carries template syntax' in ' '.join(proc.stderr.split())
    assert hv['described'] == hv['libvirt_name'] + ' on localhost'
    groups = [g for g in inv if g != '_meta']
    assert all(set(g) <= set('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_') for g in groups), groups
    assert 'role_web' in groups and 'libvirt_tag_web' in groups

    with open(os.path.join(home, 'play.yml'), 'w') as f:
        f.write(PLAYBOOK)
    proc = run(controller, 'ansible-playbook', ['-i', config, os.path.join(home, 'play.yml')], home)
    assert pwned(home) == [], proc.stdout
    assert 'ok=4' in proc.stdout and "cd; touch kvmops-pwned-name" in proc.stdout


def _cache_config(home, uris, cache_dir, **extra):
    config = os.path.join(home, 'libvirt_guests.yml')
    data = {'plugin': 'kvmops.hypervisor.libvirt_guests', 'uris': uris, 'connect_timeout': 20,
            'cache': True, 'cache_plugin': 'ansible.builtin.jsonfile', 'cache_connection': cache_dir,
            'cache_timeout': 3600}
    data.update(extra)
    with open(config, 'w') as f:
        yaml.safe_dump(data, f)
    return config


def _cache_file(cache_dir):
    files = [f for f in os.listdir(cache_dir) if not f.startswith('.')]
    assert len(files) == 1, files
    return os.path.join(cache_dir, files[0])


def _tamper(path, entry):
    """Write entry as the jsonfile cache's content (ansible-core 2.19 wraps it in __payload__)."""
    with open(path) as f:
        wrapped = '__payload__' in json.load(f)
    with open(path, 'w') as f:
        json.dump({'__payload__': json.dumps(entry)} if wrapped else entry, f)


HOSTILE_GUESTS = [
    {'name': 'good', 'uuid': '00000000-0000-0000-0000-000000000001', 'state': 'running', 'vcpus': 1,
     'memory_mib': 64, 'tags': [payload('cachetag')],
     'interfaces': [{'mac': '52:54:00:00:00:01', 'network': 'n', 'network_forward': 'nat', 'type': 'network',
                     'target': None, 'interface': payload('ifname'), 'sources': ['lease'], 'rejected': [],
                     'addresses': [{'address': '10.99.0.5', 'prefix': 24, 'family': 'ipv4', 'source': 'lease'}]}]},
    {'name': 'evil', 'uuid': '00000000-0000-0000-0000-000000000002', 'state': 'running', 'vcpus': 1,
     'memory_mib': 64, 'tags': [],
     'interfaces': [{'mac': '52:54:00:00:00:02', 'network': 'n', 'network_forward': 'nat', 'type': 'network',
                     'target': None, 'interface': None, 'sources': ['agent'], 'rejected': [],
                     'addresses': [{'address': '10.99.0.6 -o ProxyCommand=touch${IFS}kvmops-pwned-cache',
                                    'prefix': 24, 'family': 'ipv4', 'source': 'agent'}]}]},
]


def test_a_tampered_inventory_cache_never_becomes_a_command(tmp_path):
    home = str(tmp_path / 'home')
    os.makedirs(os.path.join(home, 'tmp'))
    cache_dir = os.path.join(home, 'cache')
    uri = 'qemu+ssh://admin@127.0.0.1:1/system'
    config = _cache_config(home, [uri], cache_dir, proxy_ssh_args="-i '/keys/hv key' -o StrictHostKeyChecking=no")
    bindir = os.path.join(paths.VENV, 'bin')
    first = run(bindir, 'ansible-inventory', ['-i', config, '--list'], home)
    assert 'is not listed' in first.stderr
    path = _cache_file(cache_dir)
    # Tampered: a listing of the configured hypervisor with hostile strings, and an entry for
    # a URI that is not configured (with a user name made to break out of a ProxyCommand).
    bad_uri = "qemu+ssh://x';touch${IFS}kvmops-pwned-uri;'@127.0.0.1/system"
    _tamper(path, {'format': 2, 'hypervisors': {uri: {'guests': HOSTILE_GUESTS, 'listed': 'x'},
                                                bad_uri: {'guests': HOSTILE_GUESTS, 'listed': 'x'}}})
    proc = run(bindir, 'ansible-inventory', ['-i', config, '--list'], home)
    hosts = plain(json.loads(proc.stdout))['_meta']['hostvars']
    assert sorted(hosts) == ['evil', 'good']
    assert all(h['libvirt_uri'] == uri for h in hosts.values())
    # A non-address is never ansible_host (nor, with it, an ssh hop).
    assert 'ansible_host' not in hosts['evil'] and 'ansible_ssh_common_args' not in hosts['evil']
    good = hosts['good']
    assert good['ansible_host'] == '10.99.0.5'
    words = shlex.split(good['ansible_ssh_common_args'])       # how ansible's ssh plugin splits it
    assert words[0] == '-o' and len(words) == 2
    assert words[1].startswith('ProxyCommand=')
    # The ProxyCommand is run by a shell: its words are exactly these, nothing more.
    assert shlex.split(words[1][len('ProxyCommand='):]) == [
        'ssh', '-i', '/keys/hv key', '-o', 'StrictHostKeyChecking=no', '-W', '%h:%p', '-p', '1', 'admin@127.0.0.1']
    assert pwned(home) == []

    # ansible-core 2.19's jsonfile cache keeps data tags: an entry can claim a string is a
    # trusted template. What the plugin serves from the cache is untagged (wrap_var) first.
    trusted = {'value': payload('trusted'), 'tags': [{'__ansible_type': 'TrustedAsTemplate'}],
               '__ansible_type': '_AnsibleTaggedStr'}
    with open(path) as f:
        if '__payload__' in json.load(f):
            guests = json.loads(json.dumps(HOSTILE_GUESTS))
            guests[0]['tags'] = [trusted]
            guests[0]['name'] = trusted
            _tamper(path, {'format': 2, 'hypervisors': {uri: {'guests': guests, 'listed': 'x'}}})
            with open(os.path.join(home, 'play.yml'), 'w') as f:
                f.write('- hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n'
                        '    - ansible.builtin.debug:\n        msg: "{{ libvirt_name }} {{ libvirt_tags }}"\n')
            proc = run(bindir, 'ansible-playbook', ['-i', config, os.path.join(home, 'play.yml')], home)
            assert pwned(home) == [] and 'kvmops-pwned-trusted' in proc.stdout, proc.stdout

    # The old format (a list, the hop computed from a cached URI) is not read at all.
    _tamper(path, [{'name': 'hv', 'uri': bad_uri, 'guests': HOSTILE_GUESTS}])
    proc = run(bindir, 'ansible-inventory', ['-i', config, '--list'], home)
    assert 'not one this version wrote' in ' '.join(proc.stderr.split())
    assert plain(json.loads(proc.stdout))['_meta']['hostvars'] == {}


def test_a_cache_directory_others_can_write_is_not_used(tmp_path):
    home = str(tmp_path / 'home')
    os.makedirs(os.path.join(home, 'tmp'))
    cache_dir = os.path.join(home, 'shared-cache')
    os.makedirs(cache_dir)
    os.chmod(cache_dir, 0o777)
    config = _cache_config(home, [UNREACHABLE], cache_dir)
    proc = run(os.path.join(paths.VENV, 'bin'), 'ansible-inventory', ['-i', config, '--list'], home)
    assert 'the cache is not used' in ' '.join(proc.stderr.split())
    assert os.listdir(cache_dir) == []


NODE = """<node>
  <domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory>65536</memory><vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os></domain>
</node>"""


def test_a_failed_listing_is_never_cached_as_no_guests(tmp_path):
    home = str(tmp_path / 'home')
    os.makedirs(os.path.join(home, 'tmp'))
    node = os.path.join(home, 'hv1.xml')
    uri = 'test://' + node
    config = _cache_config(home, [{'uri': uri, 'name': 'hv1'}], os.path.join(home, 'cache'))
    bindir = os.path.join(paths.VENV, 'bin')

    # hv1 fails first (its file is missing): not cached as empty - the next run asks again.
    proc = run(bindir, 'ansible-inventory', ['-i', config, '--list'], home)
    assert 'hypervisor hv1 (%s) is not listed' % uri in ' '.join(proc.stderr.split())
    with open(node, 'w') as f:
        f.write(NODE.format(name='g1', uuid='6d5f3ff6-1f21-4a4f-9b3a-0a0a0a0a0a01'))
    proc = run(bindir, 'ansible-inventory', ['-i', config, '--list'], home)
    assert sorted(json.loads(proc.stdout)['_meta']['hostvars']) == ['g1']

    # Cached and then failing: every run that serves the last good listing says so.
    os.unlink(node)
    for _round in range(2):
        proc = run(bindir, 'ansible-inventory', ['-i', config, '--list', '--flush-cache'], home)
        err = ' '.join(proc.stderr.split())
        assert 'hypervisor hv1 (%s) could not be listed' % uri in err and 'last good listing' in err, err
        assert sorted(json.loads(proc.stdout)['_meta']['hostvars']) == ['g1']
        proc = run(bindir, 'ansible-inventory', ['-i', config, '--list'], home)   # a cache hit
        assert 'last good listing' in ' '.join(proc.stderr.split())
        assert sorted(json.loads(proc.stdout)['_meta']['hostvars']) == ['g1']
    # Back: listed afresh on the next run (the failure was never a listing).
    with open(node, 'w') as f:
        f.write(NODE.format(name='g2', uuid='6d5f3ff6-1f21-4a4f-9b3a-0a0a0a0a0a02'))
    proc = run(bindir, 'ansible-inventory', ['-i', config, '--list'], home)
    assert sorted(json.loads(proc.stdout)['_meta']['hostvars']) == ['g2']
    assert 'last good' not in proc.stderr


@pytest.mark.parametrize('module, package', [('lxml', 'lxml'), ('libvirt', 'libvirt-python')])
def test_a_missing_controller_dependency_says_what_to_install(tmp_path, module, package):
    home = str(tmp_path / 'home')
    os.makedirs(os.path.join(home, 'tmp'))
    blocker = tmp_path / 'blocker'
    (blocker / module).mkdir(parents=True)
    (blocker / module / '__init__.py').write_text('raise ImportError("blocked by the test")\n')
    config = _cache_config(home, ['test:///default'], os.path.join(home, 'cache'), cache=False)
    proc = run(os.path.join(paths.VENV, 'bin'), 'ansible-inventory', ['-i', config, '--list'], home,
               extra_env={'PYTHONPATH': str(blocker)}, check=False)
    err = ' '.join(proc.stderr.split())
    assert "'NoneType' object" not in err
    assert 'needs %s on the controller' % package in err, err
    assert 'pip install %s' % package in err
    assert 'python3-%s' % ('lxml' if module == 'lxml' else 'libvirt') in err


def test_a_hypervisor_that_hangs_costs_its_timeout_not_the_inventory(tmp_path):
    """A hypervisor that accepts the TCP connection and never answers (a listener on 127.0.0.1
    of this test) beside a working one: the run ends about connect_timeout later than without
    it, with a warning, and the working hypervisor's guests are listed (issue 33)."""
    home = str(tmp_path / 'home')
    os.makedirs(os.path.join(home, 'tmp'))
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(4)
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    hung = 'qemu+tcp://127.0.0.1:%d/system' % listener.getsockname()[1]
    bindir = os.path.join(paths.VENV, 'bin')
    try:
        config = _cache_config(home, ['test:///default'], os.path.join(home, 'cache'), cache=False)
        start = time.monotonic()
        run(bindir, 'ansible-inventory', ['-i', config, '--list'], home)
        alone = time.monotonic() - start
        config = _cache_config(home, ['test:///default', hung], os.path.join(home, 'cache'), cache=False,
                               connect_timeout=3)
        start = time.monotonic()
        proc = run(bindir, 'ansible-inventory', ['-i', config, '--list'], home)
        took = time.monotonic() - start
    finally:
        listener.close()
        for conn, _peer in held:
            conn.close()
    assert held, 'libvirt never connected to the listener'
    err = ' '.join(proc.stderr.split())
    assert 'hypervisor 127.0.0.1 (%s) is not listed: no answer within 3s' % hung in err, err
    assert list(json.loads(proc.stdout)['_meta']['hostvars']) == ['test']
    # 3 s for the hung one; the rest is the machine's load (the run without it took `alone`)
    assert took < alone + 3 + max(5, alone), (took, alone)
