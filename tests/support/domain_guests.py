"""What the virt_install_domain integration tests share: running the module, the tiny
guest's options."""
import os

from .ansible_run import run_module

GIB = 1024 ** 3
PASSWORD = 'kvm0pS3c'  # VNC: at most 8 bytes


def vid(args, check=False, diff=False):
    return run_module('virt_install_domain', args, check=check, diff=diff)


def assert_ok(res):
    assert not res.get('failed'), res.get('msg', res)
    return res


def tiny_args(prefix, image_dir, tiny, **extra):
    """The tiny guest booted from its kernel, a 100 GiB sparse disk, VNC on 127.0.0.1."""
    args = dict(name=prefix + 'vm', memory='256MiB', vcpus=1, virt_type='auto',
                os_variant='linux', kernel=tiny['kernel'], initrd=tiny['initrd'],
                cmdline='console=ttyS0', serial=os.path.join(image_dir, 'console.log'),
                networks=[], disks=[{'path': os.path.join(image_dir, 'root.img'), 'size': 100}],
                graphics={'type': 'vnc', 'listen': '127.0.0.1', 'password': PASSWORD})
    args.update(extra)
    return args
