"""What the virt_backup tests share: a tiny guest with a qcow2 data disk and the block writer
of testbed/tiny_guest_init.sh (kvmops.writer=vda), a root shell on its second serial port,
copies of the data disk taken with the guest paused, and the module run directly (so that a
test can kill exactly the module's process)."""
import json
import os
import subprocess
import tempfile

from . import paths
from .libvirt_helpers import tiny_guest_xml, wait_for_text
from .tiny_shell import SerialShell, serial_socket_xml, shell_initrd

BOOT_TIMEOUT = 300
TINY_INIT = os.path.join(paths.REPO, 'testbed', 'tiny_guest_init.sh')
BLOCK = 65536


def make_writer_guest(conn, name, tiny, image_dir, size='64M', fmt='qcow2', extra=''):
    """Define (not start) the tiny guest with a data disk vda that its writer writes to."""
    disk = os.path.join(image_dir, 'data.' + ('qcow2' if fmt == 'qcow2' else 'img'))
    if not os.path.exists(disk):
        subprocess.run(['qemu-img', 'create', '-q', '-f', fmt, disk, size], check=True)
    sock = os.path.join(image_dir, 'sh.sock')
    devices = ("<disk type='file' device='disk'><driver name='qemu' type='%s'/><source file='%s'/>"
               "<target dev='vda' bus='virtio'/></disk>" % (fmt, disk)) + serial_socket_xml(sock) + extra
    initrd = shell_initrd(tiny['initrd'], image_dir, tiny_init=TINY_INIT)
    log = os.path.join(image_dir, 'serial.log')
    dom = conn.defineXML(tiny_guest_xml(name, {'kernel': tiny['kernel'], 'initrd': initrd}, log,
                                        memory=160, devices=devices,
                                        cmdline='console=ttyS0 no_timer_check kvmops.writer=vda'))
    return {'dom': dom, 'disk': disk, 'sock': sock, 'log': log, 'initrd': initrd}


def boot(guest):
    guest['dom'].create()
    wait_for_text(guest['log'], 'KVMOPS-READY', timeout=BOOT_TIMEOUT)
    assert 'KVMOPS-WRITER /dev/vda' in open(guest['log'], errors='replace').read()
    guest['shell'] = SerialShell(guest['sock'])
    return guest['shell']


def write_round(guest, rnd, count=4):
    """The guest writes `count` 64 KiB blocks of round rnd and says so on its console."""
    guest['shell'].run('kvmops-write %d %d' % (rnd, count), timeout=120 + count)
    wait_for_text(guest['log'], 'KVMOPS-WROTE %d %d' % (rnd, count), timeout=60)


def paused_copy(guest, dest):
    """A raw copy of the data disk taken while the guest is paused (the caller resumes)."""
    subprocess.run(['qemu-img', 'convert', '-U', '-f', 'qcow2', '-O', 'raw', guest['disk'], dest],
                   check=True)
    return dest


def images_equal(a, b):
    proc = subprocess.run(['qemu-img', 'compare', '-q', '-f', 'raw', '-F', 'raw', a, b], check=False)
    return proc.returncode == 0


def layer_data_bytes(path):
    """Bytes of data allocated in this qcow2 file itself (not in its backing files)."""
    out = subprocess.run(['qemu-img', 'map', '--output=json', '-f', 'qcow2', path],
                         stdout=subprocess.PIPE, check=True, universal_newlines=True).stdout
    return sum(e['length'] for e in json.loads(out) if e.get('depth') == 0 and e.get('data'))


def our_checkpoints(dom):
    return sorted(c.getName() for c in dom.listAllCheckpoints(0)
                  if c.getName().startswith('kvmops-backup-'))


def module_process(module, args):
    """Start a module of this checkout directly (python3 MODULE ARGS.json), as Ansible would on
    the target; returns (Popen, args file). The caller waits or kills it."""
    fd, argfile = tempfile.mkstemp(suffix='.json')
    with os.fdopen(fd, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
    env = dict(os.environ, PYTHONPATH=paths.COLLECTIONS_DIR)
    path = os.path.join(paths.REPO, 'plugins', 'modules', module + '.py')
    proc = subprocess.Popen([os.path.join(paths.VENV, 'bin', 'python'), path, argfile], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    return proc, argfile


def module_result(proc, argfile, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    os.unlink(argfile)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError('module printed no JSON (rc %s): %s %s' % (proc.returncode, out[-2000:], err[-2000:]))


def run_direct(module, args, check=False, timeout=600):
    """Run a module of this checkout without Ansible around it (a fraction of a second instead
    of ansible-playbook's start-up under load); the module's own code and result."""
    args = dict(args)
    if check:
        args['_ansible_check_mode'] = True
    proc, argfile = module_process(module, args)
    return module_result(proc, argfile, timeout=timeout)


def leftover_state(name, disk):
    """What libvirt, QEMU and the qcow2 file hold for a guest's backups (for the test's log):
    libvirt's job, checkpoints, QEMU's block jobs and jobs, the disk's persistent bitmaps."""
    def run(cmd):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=60, check=False)
        return ' '.join(p.stdout.split())
    out = {
        'domjobinfo': run(['virsh', 'domjobinfo', name]),
        'checkpoint-list': run(['virsh', 'checkpoint-list', name, '--name']),
        'query-block-jobs': run(['virsh', 'qemu-monitor-command', name, '{"execute":"query-block-jobs"}']),
        'query-jobs': run(['virsh', 'qemu-monitor-command', name, '{"execute":"query-jobs"}']),
    }
    try:
        nodes = json.loads(subprocess.run(
            ['virsh', 'qemu-monitor-command', name,
             '{"execute":"query-named-block-nodes","arguments":{"flat":true}}'],
            stdout=subprocess.PIPE, check=True, universal_newlines=True, timeout=60).stdout)['return']
        out['qemu-bitmaps'] = sorted(set((n.get('node-name'), b.get('name'), b.get('recording'))
                                         for n in nodes for b in n.get('dirty-bitmaps', [])))
    except (subprocess.SubprocessError, ValueError, KeyError) as exc:
        out['qemu-bitmaps'] = 'query-named-block-nodes failed: %s' % exc
    try:
        info = json.loads(subprocess.run(['qemu-img', 'info', '-U', '--output=json', '-f', 'qcow2', disk],
                                         stdout=subprocess.PIPE, check=True,
                                         universal_newlines=True, timeout=60).stdout)
        out['bitmaps'] = [(b['name'], b.get('flags')) for b in
                          info.get('format-specific', {}).get('data', {}).get('bitmaps', [])]
    except (subprocess.SubprocessError, ValueError) as exc:
        out['bitmaps'] = 'qemu-img info failed: %s' % exc
    return out
