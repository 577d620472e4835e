"""Podman hypervisors that can migrate guests between each other (make migration).

Each container is the `hypervisor` image (testbed/setup_podman.sh) with: every other
container's name in /etc/hosts (no DNS between containers here), root's SSH key in the
others' authorized_keys and their host keys in known_hosts (libvirt's qemu+ssh transport and
peer-to-peer migration run as root), libvirtd and the default network started, a dir pool
`vm-images` on /vm-images (a podman volume all of them mount when shared=True), and the tiny
guest's kernel and initrd in /srv/kvmops-media (a direct-kernel-boot guest needs them on the
target too). Podman's network has no firewall: ports 22 and 49152-49215 are open between them.
"""
import contextlib
import json
import os
import re
import subprocess
import time
import uuid

from . import ansible_run, containers, paths

MEDIA = containers.MEDIA_DIR
ASSETS = os.environ.get('KVMOPS_MIGRATION_ASSETS', paths.ASSETS)
COUNTER_CMDLINE = 'console=ttyS0 no_timer_check kvmops.counter=1'
COUNT_RE = re.compile(r'KVMOPS-COUNT (\d+) (\S+) ([0-9.]+)')


def sh(name, *argv, **kwargs):
    proc = containers.podman_exec(name, *argv, **kwargs)
    if kwargs.get('check', True) and proc.returncode != 0:
        raise AssertionError('%s: %s failed (rc %s): %s %s' % (
            name, ' '.join(argv), proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc


def uri(name):
    return 'qemu+ssh://root@%s/system' % name


@contextlib.contextmanager
def fleet(count=2, shared=True, prefix='kvmops-t-mig-', volume_prefix='kvmops-t-migvol-',
          recipe='hypervisor'):
    """count hypervisor containers ready to migrate between each other; yields their names.
    Containers are named prefix + random, the shared volume volume_prefix + random.
    recipe: the image (testbed/images/<recipe>.packages); 'pkihost' adds what the libvirt_pki
    role needs on a host (migration over TLS)."""
    image = containers.image(recipe)
    volume = None
    extra = []
    if shared:
        volume = '%s%s' % (volume_prefix, uuid.uuid4().hex[:8])
        subprocess.run(['podman', 'volume', 'create', volume], check=True, stdout=subprocess.DEVNULL, timeout=60)
        extra = ['-v', '%s:/vm-images' % volume]
    try:
        with contextlib.ExitStack() as stack:
            names = [stack.enter_context(containers.running(image, prefix, boot_timeout=300, extra_args=extra))
                     for _n in range(count)]
            prepare(names)
            yield names
    finally:
        if volume:
            subprocess.run(['podman', 'volume', 'rm', '-f', volume], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60, check=False)


def prepare(names):
    addrs = dict((n, containers.address(n)) for n in names)
    keys = {}
    for n in names:
        sh(n, 'sh', '-c', 'mkdir -p /root/.ssh && chmod 700 /root/.ssh && '
                          '(test -f /root/.ssh/id_ed25519 || ssh-keygen -q -t ed25519 -N "" -f /root/.ssh/id_ed25519)')
        keys[n] = sh(n, 'cat', '/root/.ssh/id_ed25519.pub').stdout.strip()
        sh(n, 'sh', '-c', 'systemctl start ssh; systemctl start libvirtd; systemctl start virtlogd || true')
    hosts = ''.join('%s %s\n' % (addrs[n], n) for n in names)
    for n in names:
        sh(n, 'sh', '-c', 'cat >> /etc/hosts <<EOF\n%sEOF' % hosts)
        sh(n, 'sh', '-c', 'cat > /root/.ssh/authorized_keys <<EOF\n%s\nEOF\nchmod 600 /root/.ssh/authorized_keys'
           % '\n'.join(keys.values()))
    for n in names:
        others = ' '.join(o for o in names if o != n)
        deadline = time.monotonic() + 30
        while True:
            proc = sh(n, 'sh', '-c', 'ssh-keyscan -T 5 %s > /root/.ssh/known_hosts 2>/dev/null; '
                                     'test $(wc -l < /root/.ssh/known_hosts) -ge %d'
                      % (others, len(names) - 1), check=False)
            if proc.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError('%s: ssh-keyscan of %s failed' % (n, others))
            time.sleep(1)
    for n in names:
        sh(n, 'sh', '-c', 'virsh net-start default >/dev/null 2>&1 || virsh net-info default | grep -q "Active: *yes"')
        sh(n, 'sh', '-c', 'mkdir -p /vm-images %s; virsh pool-info vm-images >/dev/null 2>&1 || '
                          '(virsh pool-define-as vm-images dir --target /vm-images && virsh pool-start vm-images)' % MEDIA)
        for f in ('vmlinuz', 'initrd.img'):
            subprocess.run(['podman', 'cp', os.path.join(ASSETS, f), '%s:%s/%s' % (n, MEDIA, f)],
                           check=True, timeout=60)
    for n in names:
        for o in names:
            if o != n:
                sh(n, 'virsh', '-c', uri(o), 'uri', timeout=60)


def guest_xml(name, memory_mib=128, disk=None, network='default', bridge=None, cpu=None):
    iface = ('<interface type="bridge"><source bridge="%s"/><model type="virtio"/></interface>' % bridge
             if bridge else '<interface type="network"><source network="%s"/><model type="virtio"/></interface>' % network)
    disk_xml = ('<disk type="file" device="disk"><driver name="qemu" type="qcow2"/><source file="%s"/>'
                '<target dev="vda" bus="virtio"/></disk>' % disk) if disk else ''
    return ('<domain type="qemu"><name>{n}</name><memory unit="MiB">{m}</memory><vcpu>1</vcpu>'
            '<os><type arch="x86_64" machine="pc">hvm</type><kernel>{media}/vmlinuz</kernel>'
            '<initrd>{media}/initrd.img</initrd><cmdline>{cmd}</cmdline></os>{cpu}'
            '<features><acpi/></features><on_poweroff>destroy</on_poweroff>'
            '<devices>{disk}{iface}<serial type="file"><source path="/var/log/{n}-serial.log"/>'
            '<target port="0"/></serial><console type="file"><source path="/var/log/{n}-serial.log"/>'
            '<target type="serial" port="0"/></console><memballoon model="none"/>'
            '</devices></domain>').format(
        n=name, m=memory_mib, media=MEDIA, cmd=COUNTER_CMDLINE, disk=disk_xml, iface=iface,
        cpu=cpu or '')


def start_guest(host, name, memory_mib=128, disk_mib=64, wait=True, **kwargs):
    """Define and start a counting tiny guest on host with a qcow2 disk in /vm-images."""
    disk = '/vm-images/%s.qcow2' % name
    sh(host, 'qemu-img', 'create', '-q', '-f', 'qcow2', disk, '%dM' % disk_mib)
    xml = guest_xml(name, memory_mib, disk, **kwargs)
    sh(host, 'sh', '-c', 'cat > /tmp/%s.xml <<EOF\n%s\nEOF\nvirsh define /tmp/%s.xml >/dev/null && virsh start %s >/dev/null'
       % (name, xml, name, name))
    if wait:
        wait_count(host, name, 3)


def counts(host, name):
    """[(n, boot id, uptime)] the guest printed on host's serial log."""
    proc = sh(host, 'cat', '/var/log/%s-serial.log' % name, check=False)
    return [(int(m.group(1)), m.group(2), float(m.group(3))) for m in COUNT_RE.finditer(proc.stdout)]


def wait_count(host, name, at_least, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = counts(host, name)
        if c and c[-1][0] >= at_least:
            return c
        time.sleep(0.5)
    raise AssertionError('%s on %s: the counter did not reach %d: %s'
                         % (name, host, at_least, sh(host, 'tail', '-5', '/var/log/%s-serial.log' % name, check=False).stdout))


def state(host, name):
    proc = sh(host, 'virsh', 'domstate', name, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def qemu_processes(host, name):
    proc = sh(host, 'ps', '-C', 'qemu-system-x86_64', '-o', 'args=', check=False)
    return sum(1 for line in proc.stdout.splitlines() if 'guest=%s,' % name in line)


def inventory(path, names):
    hosts = dict((n, {'ansible_connection': 'containers.podman.podman', 'ansible_host': n,
                      'ansible_python_interpreter': '/usr/bin/python3', 'ansible_become': False})
                 for n in names)
    with open(path, 'w') as f:
        json.dump({'hypervisors': {'hosts': hosts}}, f)
    return path


def migrate(inv, source, check=False, timeout=600, **args):
    """Run virt_migrate on source; (result of the task, the json document)."""
    task = {'name': 'migrate', 'kvmops.hypervisor.virt_migrate': args, 'ignore_errors': True}
    doc = ansible_run._run_play([task], check, True, None, timeout, host=source, inventory=inv)  # pylint: disable=protected-access
    result = doc['plays'][0]['tasks'][0]['hosts'][source]
    return result, doc


def kill_libvirtd(host):
    """SIGKILL host's libvirtd and keep it down (systemd would restart it at once, and libvirt
    then takes over the incoming migration: that is not the fault we want)."""
    sh(host, 'sh', '-c', 'mkdir -p /run/systemd/system/libvirtd.service.d && printf "[Service]\\nRestart=no\\n" '
                         '> /run/systemd/system/libvirtd.service.d/norestart.conf && systemctl daemon-reload')
    pid = sh(host, 'systemctl', 'show', '-p', 'MainPID', '--value', 'libvirtd').stdout.strip()
    if pid in ('', '0'):
        # Debian's libvirtd exits after 120 s idle (--timeout 120, socket activation).
        raise AssertionError('%s: libvirtd is not running, nothing to kill' % host)
    sh(host, 'kill', '-9', pid)
    return pid


def start_libvirtd(host):
    sh(host, 'sh', '-c', 'rm -f /run/systemd/system/libvirtd.service.d/norestart.conf && systemctl daemon-reload '
                         '&& systemctl start libvirtd && for i in $(seq 50); do virsh uri >/dev/null 2>&1 && break; sleep 0.2; done')
