"""Issue 26, "What a remote URI means": which libvirt URIs name this host (pure logic), the
refusal's wording, and that the collection has one implementation of the question."""
import os
import re

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import locality

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '..'))

LOCAL = [
    'qemu:///system',
    'qemu:///session',
    'qemu+unix:///system',
    'QEMU+UNIX:///system',
    'qemu+unix:///system?socket=/run/libvirt/libvirt-sock',
    'test:///default',
    'test:///tmp/node.xml',
    'lxc:///system',
]
REMOTE = [
    'qemu+ssh://hv2/system',
    'qemu+ssh://root@hv2:2222/system?keyfile=/k',
    'qemu+tcp://10.0.0.5/system',
    'qemu+tls://hv2.example.com/system',
    'qemu+libssh2://root@hv2/system',
    'qemu+libssh://hv2/system',
    'qemu+ext:///system?command=/bin/run-elsewhere',
    # localhost through a network transport: ssh_config, a port forward or a published
    # container port can put that daemon on another machine or mount namespace.
    'qemu+ssh://localhost/system',
    'qemu+ssh://root@127.0.0.1/system',
    'qemu+tcp://127.0.0.1:16509/system',
    'qemu+tls://[::1]/system',
    'qemu+ssh:///system',             # a network transport without a host: still sshd
    'qemu+tcp:///system',
    'qemu://hv2/system',              # a host without a transport: libvirt uses TLS to it
    'qemu+unix://hv2/system',         # a host part: not this host, whatever the transport
    '',
    None,
    'system',
    '/var/run/libvirt/libvirt-sock',
]


@pytest.mark.parametrize('uri', LOCAL)
def test_local_uris(uri):
    assert locality.is_local_uri(uri)


@pytest.mark.parametrize('uri', REMOTE)
def test_remote_uris(uri):
    assert not locality.is_local_uri(uri)


class _Conn(object):
    def __init__(self, uri=None, error=None):
        self.uri, self.error = uri, error

    def getURI(self):
        if self.error:
            raise self.error
        return self.uri


def test_connection_is_local_asks_the_connection():
    assert locality.connection_is_local(_Conn('qemu:///system'))
    assert not locality.connection_is_local(_Conn('qemu+tcp://10.88.0.5/system'))
    assert not locality.connection_is_local(_Conn(error=RuntimeError('gone')))


def test_refusal_names_option_masks_password_and_says_where_to_run():
    msg = locality.refusal('qemu+tcp://admin:s3cret@hv2/system',
                           [('remove_storage', 'deletes the file disk /vm/a.qcow2')],
                           'set remove_storage: false')
    assert 's3cret' not in msg
    assert 'remove_storage deletes the file disk /vm/a.qcow2' in msg
    assert 'Nothing was changed' in msg
    assert 'delegate_to' in msg and 'uri: qemu:///system' in msg
    assert msg.endswith('or set remove_storage: false.')


def test_require_local_only_refuses_needs_through_remote_uris():
    locality.require_local('qemu+ssh://hv2/system', [])
    locality.require_local('qemu:///system', [('disks[0].path', 'creates /x')])
    with pytest.raises(locality.RemoteUriError) as exc:
        locality.require_local('qemu+ssh://hv2/system', [('disks[0].path', 'creates /x')])
    assert exc.value.result == {'changed': False}
    assert 'disks[0].path creates /x' in str(exc.value)


def test_one_implementation_of_the_question():
    """No other file of the collection parses a URI to decide whether it is local."""
    offenders = []
    for base in ('plugins/module_utils', 'plugins/modules'):
        for dirpath, dummy, files in os.walk(os.path.join(ROOT, base)):
            for f in files:
                path = os.path.join(dirpath, f)
                if not f.endswith('.py') or path.endswith(os.path.join('_libvirt', 'locality.py')):
                    continue
                # opening the same URI again (_libvirt/agent.py) is not a question about it
                text = re.sub(r'libvirt\.open\([\w.()]*getURI\(\)\)', '', open(path).read())
                if re.search(r'def \w*(uri|url)_is_local|def \w*is_local_uri|def \w*connection_is_local',
                             text) or ("getURI()" in text and 'locality' not in text):
                    offenders.append(os.path.relpath(path, ROOT))
    assert offenders == []
