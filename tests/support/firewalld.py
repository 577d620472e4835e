"""What the firewalld tests in podman hypervisors share (tests/trixie/test_firewalld.py,
tests/remote_access/test_libvirt_tls_firewalld.py): the zone they use, a play's recap checked
for failures, and the services enabled in that zone inside the container."""
import json

from support import containers

ZONE = 'work'          # not firewalld's default zone (public): the zone option is honoured


def ok(doc, name):
    """The play ran without failure on host `name`: its recap stats."""
    assert doc['_rc'] == 0 and doc['stats'][name]['failures'] == 0, json.dumps(
        [(t['task']['name'], h.get('msg')) for p in doc['plays'] for t in p['tasks']
         for h in t['hosts'].values() if h.get('failed')])[:3000] + doc['_stderr'][-2000:]
    return doc['stats'][name]


def services(name, permanent=False):
    """The services enabled in ZONE in container `name`, at runtime or permanently."""
    argv = ['firewall-cmd', '--zone', ZONE, '--list-services'] + (['--permanent'] if permanent else [])
    return containers.podman_exec(name, *argv).stdout.split()
