"""Podman containers as bare Debian 12 hosts, reached with the containers.podman connection.

The image comes from a recipe in testbed/images/ through testbed/setup_podman.sh (built once,
cached by recipe hash). Containers run privileged with systemd as PID 1, so libvirtd runs
inside them; their network is podman's, so a guest's virbr0 lives in the container.
"""
import contextlib
import json
import os
import subprocess
import time
import uuid

from . import paths

SETUP_PODMAN = os.path.join(paths.REPO, 'testbed', 'setup_podman.sh')


def image(recipe, timeout=900):
    """The podman image reference built from testbed/images/<recipe>.packages."""
    proc = subprocess.run([SETUP_PODMAN, 'image', recipe], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        raise AssertionError('testbed/setup_podman.sh image %s failed:\n%s'
                             % (recipe, proc.stderr[-3000:]))
    return proc.stdout.strip().splitlines()[-1]


def podman_exec(name, *argv, **kwargs):
    return subprocess.run(['podman', 'exec', name] + list(argv), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=kwargs.get('timeout', 120), check=False)


@contextlib.contextmanager
def running(image_ref, prefix, boot_timeout=60, extra_args=()):
    """Run a container from image_ref until the block ends; yield its name (prefix + random).
    extra_args: more `podman run` options (e.g. a volume: ['-v', 'VOL:/vm-images'])."""
    name = '%s%s' % (prefix, uuid.uuid4().hex[:8])
    subprocess.run(['podman', 'run', '-d', '--name', name, '--hostname', name, '--privileged',
                    '--systemd=always'] + list(extra_args) + [image_ref], check=True,
                   stdout=subprocess.DEVNULL, timeout=120)
    try:
        deadline = time.monotonic() + boot_timeout
        state = ''
        while time.monotonic() < deadline:
            try:
                state = podman_exec(name, 'systemctl', 'is-system-running', timeout=20).stdout.strip()
            except subprocess.TimeoutExpired:  # a loaded machine: ask again until the deadline
                continue
            if state in ('running', 'degraded'):
                break
            time.sleep(0.5)
        else:
            raise AssertionError('container %s: systemd did not come up (%s)' % (name, state))
        yield name
    finally:
        subprocess.run(['podman', 'rm', '-f', '-t', '5', name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120, check=False)


def write_inventory(path, name, host_vars=None):
    """An inventory with the container as the only hypervisor (root inside: no become)."""
    host = {'ansible_connection': 'containers.podman.podman', 'ansible_host': name,
            'ansible_python_interpreter': '/usr/bin/python3', 'ansible_become': False}
    host.update(host_vars or {})
    with open(path, 'w') as f:
        json.dump({'hypervisors': {'hosts': {name: host}}}, f)
    return path


# The guide's layout on a bare host (images in /vm-images, ISOs in /vm-images/iso) with one
# tiny guest whose kernel and initrd the admin brought along (copy_tiny_media puts them in).
# no_timer_check: on a heavily loaded host TCG is so slow that the kernel's IO-APIC timer
# check fails and it panics (seen at load 30 on 2 cores).
TINY_CMDLINE = 'console=ttyS0 no_timer_check'
MEDIA_DIR = '/srv/kvmops-media'
GUEST = 'tiny1'
GUEST_SERIAL = '/vm-images/tiny1-serial.log'
BARE_HOST_VARS = {
    'kvm_host_apt_cache_valid_time': 3600,
    'image_storage_dir': '/vm-images',
    'image_storage_pool_name': 'vm-images',
    'image_storage_extra_dirs': [{'path': '/vm-images/iso', 'setype': 'virt_content_t'}],
    'guests_list': [{
        'name': GUEST, 'memory': 256, 'vcpus': 1, 'os_variant': 'linux',
        'kernel': MEDIA_DIR + '/vmlinuz', 'initrd': MEDIA_DIR + '/initrd.img',
        'cmdline': TINY_CMDLINE, 'serial': GUEST_SERIAL,
        'disks': [{'path': '/vm-images/tiny1.img', 'size': 1, 'format': 'raw'}],
        'networks': [{'network': 'default'}], 'graphics': {'type': 'vnc'}}],
}


def copy_tiny_media(name):
    podman_exec(name, 'mkdir', '-p', MEDIA_DIR)
    for f in ('vmlinuz', 'initrd.img'):
        subprocess.run(['podman', 'cp', os.path.join(paths.ASSETS, f), '%s:%s/%s' % (name, MEDIA_DIR, f)],
                       check=True, timeout=60)


def task_results(doc, host):
    """{task name without the role prefix: result} from the json callback's document."""
    out = {}
    for play in doc['plays']:
        for task in play['tasks']:
            out[task['task']['name'].split(' : ')[-1]] = task['hosts'].get(host, {})
    return out


def assert_check_mode_predicted(doc, name):
    """site.yml --check on the bare host: no failure, and the work a real run does, predicted."""
    stats = doc['stats'][name]
    assert doc['_rc'] == 0 and stats['failures'] == 0 and stats['unreachable'] == 0, \
        json.dumps(stats) + doc['_stderr'][-3000:]
    r = task_results(doc, name)
    apt_said = r['Say which packages apt would install (check mode without python3-apt)']
    assert apt_said['changed'] and 'libvirt-daemon-system' in apt_said['msg'], apt_said
    daemons = r['Say which libvirt daemons would be installed, enabled and started (check mode)']
    assert daemons['changed'] and 'libvirtd' in daemons['msg'], daemons
    vnc = r['Set the host-wide VNC listen address in qemu.conf']
    assert not vnc.get('failed') and any('does not exist yet' in w for w in vnc.get('warnings', [])), vnc
    assert r['Create the image directory']['changed']
    assert r['Say that the pool would be defined, started and autostarted (check mode, no libvirt yet)']['changed']
    summary = r['Show the guests']['msg']
    assert any(line.startswith(GUEST + ': not checked (check mode): libvirt is not installed yet')
               for line in summary), summary


def assert_still_bare(name):
    """Check mode changed nothing in the container."""
    assert podman_exec(name, 'dpkg-query', '-W', 'libvirt-daemon-system').returncode != 0
    for path in ('/vm-images', '/etc/libvirt'):
        assert podman_exec(name, 'test', '-e', path).returncode != 0, path


def address(name):
    """The container's address on podman's network (a test may send traffic there)."""
    out = subprocess.run(['podman', 'inspect', '-f', '{{.NetworkSettings.IPAddress}}', name],
                         stdout=subprocess.PIPE, universal_newlines=True, check=True, timeout=30)
    return out.stdout.strip()
