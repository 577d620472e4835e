# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a libvirt URI names the host the module runs on (issue 26, "What a remote URI
means"). Private to the collection: no API promise.

libvirt acts where its URI points; the modules' file work (images, seeds, caches, serial
logs, qemu.conf, preflight checks, backups' repositories) acts on the file system of the host
the module runs on. They are the same host only when the URI is local:

- local: no host part, and no transport or the ``unix`` transport (``qemu:///system``,
  ``qemu:///session``, ``qemu+unix:///system``, ``qemu+unix:///system?socket=/path``,
  ``test:///default``);
- not local: any host part (``qemu+ssh://hv2/system``, ``qemu+tcp://10.0.0.5/system``) and
  every network or command transport (ssh, libssh, libssh2, tcp, tls, ext), also without a
  host part, and also for ``localhost``, ``127.0.0.1`` and ``::1``: such a URI reaches a
  daemon through sshd or a TCP port, which ssh_config, a port forward or a container's
  published port can place on another machine or in another mount namespace, so this host's
  files are not provably that daemon's files (the fix is one word: ``qemu:///system``);
- an empty or unparsable URI: not local (libvirt would pick a default we cannot see).

A ``socket=`` parameter of a unix URI is taken as local: the socket is a file of this host.
(A daemon in a container whose socket is bind-mounted here would pass; that is the user
saying "this host" on purpose.)
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 (sanity's compile test)
    from urlparse import urlsplit

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.masking import mask_url_credentials

LOCAL_TRANSPORTS = ('', 'unix')
RUN_ON_THE_HYPERVISOR = ('Run the task on the hypervisor itself (delegate_to: that host, or '
                         'make it the inventory host of the play) with uri: qemu:///system')


class RemoteUriError(KvmopsError):
    """An option that needs this host's files was given with a URI of another host. Caught
    by _vnc/manager (its own failure with the same message)."""


def is_local_uri(uri):
    """True when libvirt at uri runs on this host and sees this host's files (see above).
    The one implementation: every module and module_utils package asks this function."""
    if not uri or not isinstance(uri, str):
        return False
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    if not parts.scheme:
        return False
    transport = parts.scheme.split('+', 1)[1] if '+' in parts.scheme else ''
    return transport.lower() in LOCAL_TRANSPORTS and not parts.netloc


def connection_is_local(conn):
    """is_local_uri of the URI an open connection reports (what libvirt really connected to);
    False when it cannot say."""
    try:
        uri = conn.getURI()
    except Exception:  # pylint: disable=broad-except  # no answer: assume another host
        return False
    return is_local_uri(uri)


def refusal(uri, needs, fix=None):
    """The message for options that need this host's files with a non-local uri.

    needs: [(option, what it does with files)], e.g. ('remove_storage', 'deletes the file
    disk /vm/a.qcow2'). fix: a sentence added after the standard one (e.g. pool volumes)."""
    items = '; '.join('%s %s' % (opt, what) for opt, what in needs)
    return ('uri=%s is another host\'s libvirt (only a URI without a host part and with no '
            'transport or +unix is this host), but %s on the file system of the host this task '
            'runs on, not on that hypervisor: the same path here is another file. Nothing was '
            'changed. %s%s.'
            % (mask_url_credentials(uri), items, RUN_ON_THE_HYPERVISOR,
               (', or ' + fix) if fix else ''))


def require_local(uri, needs, fix=None):
    """Raise RemoteUriError (refusal) when uri is not local and needs is not empty."""
    if needs and not is_local_uri(uri):
        raise RemoteUriError(refusal(uri, needs, fix), changed=False)
