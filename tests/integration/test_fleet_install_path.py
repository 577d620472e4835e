"""The README's path for real fleets, from a fresh controller with plain ansible-core.

No `ansible` bundle and no checkout on the collections path: the collection tarball that
`ansible-galaxy collection build` makes, plus what requirements.yml asks for, installed with
`ansible-galaxy collection install`. Galaxy is unreachable here, so the requirements come from
the copies bundled in the test venv's `ansible` package (the README's PyPI route), with the
version constraints of requirements.yml. Then --syntax-check of the installed playbooks
against the installed guide inventory, and a real run of kvmops.hypervisor.site against this
machine (local connection) with one tiny guest, and its re-run.

The venv comes from testbed/fleet_controller.sh (ansible-core at the oldest version
meta/runtime.yml accepts, cached by the requirements' hash); `make matrix` runs the same path
with each ansible-core of its matrix (KVMOPS_CONTROLLER_VENV).
"""
import glob
import json
import os
import subprocess

import yaml

from support import paths
from support.ansible_run import _run
from support.libvirt_helpers import wait_for_text

# no_timer_check: on a heavily loaded host TCG is so slow that the kernel's IO-APIC timer
# check fails and it panics (seen at load 30 on 2 cores).
TINY_CMDLINE = 'console=ttyS0 no_timer_check'
FLEET_CONTROLLER = os.path.join(paths.REPO, 'testbed', 'fleet_controller.sh')
BUNDLE = [os.path.join(d, 'ansible_collections') for d in paths.BUNDLE_SITE_PACKAGES]


def plain_controller():
    # make matrix runs this path with each ansible-core of its matrix (testbed/controller_venv.sh)
    venv = os.environ.get('KVMOPS_CONTROLLER_VENV') or subprocess.run(
        [FLEET_CONTROLLER], stdout=subprocess.PIPE, check=True, universal_newlines=True,
        timeout=600).stdout.strip()
    # plain ansible-core: no collections of its own
    assert glob.glob(os.path.join(venv, 'lib', 'python3*', 'site-packages', 'ansible_collections')) == []
    return venv


def sh(venv, argv, env, timeout=300):
    proc = subprocess.run([os.path.join(venv, 'bin', argv[0])] + argv[1:], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout, check=False)
    assert proc.returncode == 0, '%s failed:\n%s' % (' '.join(argv), proc.stdout[-4000:])
    return proc.stdout


def requirements():
    with open(os.path.join(paths.REPO, 'requirements.yml')) as f:
        return yaml.safe_load(f)['collections']


def test_requirements_yml_matches_galaxy_yml_dependencies():
    with open(os.path.join(paths.REPO, 'galaxy.yml')) as f:
        deps = yaml.safe_load(f)['dependencies']
    assert {r['name']: r['version'] for r in requirements()} == deps


def test_fleet_path_from_a_fresh_plain_ansible_core(tmp_path, prefix, image_dir, tiny, conn):
    venv = plain_controller()
    collections = str(tmp_path / 'collections')
    env = dict(os.environ)
    for key in [k for k in env if k.startswith('ANSIBLE_')]:
        del env[key]                      # nothing from `make` or the test venv leaks in
    env.update({'PATH': os.path.join(venv, 'bin') + os.pathsep + env.get('PATH', ''),
                'ANSIBLE_COLLECTIONS_PATH': collections, 'ANSIBLE_NOCOLOR': '1',
                'HOME': str(tmp_path)})   # no ~/.ansible/collections either

    # ansible-galaxy collection build, then install it and requirements.yml's collections
    sh(venv, ['ansible-galaxy', 'collection', 'build', '--output-path', str(tmp_path), paths.REPO], env)
    tarball = glob.glob(str(tmp_path / 'kvmops-hypervisor-*.tar.gz'))
    assert len(tarball) == 1
    local = [{'name': tarball[0], 'type': 'file'}]
    assert BUNDLE, 'the test venv has no `ansible` bundle to take the requirements from'
    for req in requirements():
        ns, name = req['name'].split('.')
        local.append({'name': os.path.join(BUNDLE[0], ns, name), 'type': 'dir',
                      'version': req['version']})
    req_file = str(tmp_path / 'requirements-local.yml')
    with open(req_file, 'w') as f:
        yaml.safe_dump({'collections': local}, f)
    out = sh(venv, ['ansible-galaxy', 'collection', 'install', '--offline', '-p', collections,
                    '-r', req_file], env)
    assert 'kvmops.hypervisor:' in out
    installed = os.path.join(collections, 'ansible_collections', 'kvmops', 'hypervisor')
    listed = sh(venv, ['ansible-galaxy', 'collection', 'list', '-p', collections], env)
    for req in requirements() + [{'name': 'kvmops.hypervisor'}]:
        assert req['name'] in listed, listed

    # the installed guide inventory and playbooks, by path and by FQCN
    guide = os.path.join(installed, 'inventories', 'guide')
    for playbook in (os.path.join(installed, 'playbooks', 'site.yml'), 'kvmops.hypervisor.site',
                     'kvmops.hypervisor.vnc_tunnels'):
        sh(venv, ['ansible-playbook', '--syntax-check', '-i', guide, playbook], env)

    # a real run against this machine, from the installed collection only
    guest = prefix + 'fleet'
    serial = os.path.join(image_dir, 'serial.log')
    inventory = str(tmp_path / 'inventory.json')
    with open(inventory, 'w') as f:
        json.dump({'hypervisors': {'hosts': {'localhost': {
            'ansible_connection': 'local', 'ansible_python_interpreter': paths.TARGET_PYTHON,
            'ansible_become': False}}, 'vars': {
            'kvm_host_apt_cache_valid_time': 0,
            # The VNC step edits qemu.conf and restarts the shared libvirtd: molecule covers it.
            'kvm_host_vnc_manage': False,
            'image_storage_dir': os.path.join(image_dir, 'pool'),
            'image_storage_pool_name': prefix + 'pool',
            # SELinux rules are covered in test_selinux_virt_dir.py (they need its clean-up).
            'image_storage_selinux': 'skip',
            'guests_list': [{
                'name': guest, 'memory': 256, 'vcpus': 1, 'os_variant': 'linux',
                'kernel': tiny['kernel'], 'initrd': tiny['initrd'], 'cmdline': TINY_CMDLINE,
                'serial': serial, 'networks': [], 'graphics': {'type': 'none'},
                'disks': [{'path': os.path.join(image_dir, 'pool', 'fleet.img'), 'size': 1}]}],
        }}}, f)
    run_env = dict(env, ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
                   ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_DEPRECATION_WARNINGS='0')
    cmd = [os.path.join(venv, 'bin', 'ansible-playbook'), '-i', inventory, 'kvmops.hypervisor.site']
    doc = _run(cmd, run_env, 900)
    stats = doc['stats']['localhost']
    assert doc['_rc'] == 0 and stats['failures'] == 0, json.dumps(stats) + doc['_stderr'][-3000:]
    dom = conn.lookupByName(guest)
    assert dom.isActive()
    wait_for_text(serial, 'KVMOPS-TINY-GUEST BOOTED', timeout=90)
    assert conn.storagePoolLookupByName(prefix + 'pool').isActive()

    doc = _run(cmd, run_env, 900)
    assert doc['_rc'] == 0 and doc['stats']['localhost']['changed'] == 0, doc['stats']['localhost']
