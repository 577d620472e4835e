# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One libvirt connection per module run. Private to the collection: no API promise."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import traceback

try:
    import libvirt
    HAS_LIBVIRT = True
    LIBVIRT_IMPORT_ERROR = None
except ImportError:
    libvirt = None
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()

LIBVIRT_INSTALL_HINT = (
    "libvirt-python is not importable by the Python running this module. Install it on the "
    "managed host (Debian/Ubuntu: apt install python3-libvirt; RHEL/Fedora: dnf install "
    "python3-libvirt) or point ansible_python_interpreter at a Python that has it."
)


from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.masking import mask_url_credentials


class LibvirtConnectionError(KvmopsError):
    """Raised with a message that says what failed and how to fix it. Caught by
    kvm_capability_facts, virt_install_domains and _vnc/manager."""


def _silence_libvirt_errors():
    # libvirt prints every error to stderr by default; the module reports them itself.
    if libvirt is not None:
        libvirt.registerErrorHandler(lambda ctx, err: None, None)


def open_connection(uri, read_only=False):
    """Open the module's single connection to libvirtd at uri."""
    if not HAS_LIBVIRT:
        raise LibvirtConnectionError(LIBVIRT_INSTALL_HINT)
    _silence_libvirt_errors()
    try:
        if read_only:
            return libvirt.openReadOnly(uri)
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtConnectionError(
            "Cannot connect to libvirt at %s: %s. Is the libvirt daemon installed and running "
            "(libvirtd, or virtqemud on split-daemon hosts), and may this user connect to it?"
            % (mask_url_credentials(uri), mask_url_credentials(str(exc)))
        )


def fail_on_missing_libvirt(module):
    """fail_json in the style of missing_required_lib when libvirt-python is absent."""
    if not HAS_LIBVIRT:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('libvirt-python') + ' ' + LIBVIRT_INSTALL_HINT,
                         exception=LIBVIRT_IMPORT_ERROR)


@contextlib.contextmanager
def connection(uri, read_only=False):
    """The module run's one connection, closed however the block ends."""
    conn = open_connection(uri, read_only=read_only)
    try:
        yield conn
    finally:
        try:
            conn.close()
        except Exception:  # pylint: disable=broad-except  # a dead daemon cannot be closed
            pass
