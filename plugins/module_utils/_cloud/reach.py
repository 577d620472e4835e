# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting until a guest can be reached: an IP address (from the DHCP lease, the guest agent
or ARP, see _libvirt/addresses.py), then optionally the SSH banner. Private to the
collection: no API promise.

Address discovery sends nothing to the guest. The SSH wait opens one TCP connection per
try to the SSH endpoint and reads the banner ("SSH-2.0-..."), nothing more: the endpoint is
ssh_host/ssh_port when given, else a port forward to guest port 22 (passt, 127.0.0.1), else
the guest's discovered address on port 22.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import socket
import time

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import addresses as _addr
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import agent as _agent


class WaitError(KvmopsError):
    """The guest did not become reachable in time. Caught by _guest/features/cloud.py, which
    re-wraps it as the guest's DomainError."""


def ssh_banner(host, port, timeout=30.0, connect_timeout=5.0):
    """The SSH server's identification line, or None when there is none (yet).

    The read waits up to timeout: an emulated guest's sshd forks and re-executes itself
    before it sends the banner, which can take many seconds, and a client that gives up
    early leaves that child running and tries again, until sshd refuses everyone with
    "Exceeded MaxStartups"."""
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except (socket.error, OSError):
        return None
    try:
        sock.settimeout(timeout)
        data = b''
        while b'\n' not in data and len(data) < 512:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    except (socket.error, OSError):
        return None
    finally:
        sock.close()
    line = data.split(b'\n', 1)[0].strip().decode('ascii', 'replace')
    return line if line.startswith('SSH-') else None


def ssh_endpoint(port_forwards, address, ssh_host=None, ssh_port=None):
    """(host, port) where SSH of the guest answers, or (None, None)."""
    if ssh_host:
        return ssh_host, ssh_port or 22
    for f in port_forwards or []:
        if f['guest_port'] == 22 and f['proto'] == 'tcp':
            host = f['address']
            if host in ('0.0.0.0', '::'):
                host = '127.0.0.1'
            return host, f['host_port']
    if address:
        return address, ssh_port or 22
    return None, None


def wait(conn, dom, cloud, clock=time.monotonic, sleep=time.sleep, banner=ssh_banner, agent_connection=None):
    """Wait for cloud['wait_for'] (ip | ssh) within cloud['wait_timeout'] seconds.

    Returns {'interfaces', 'address_errors', 'ansible_host', 'ansible_port', 'ssh_banner',
    'waited'}; raises WaitError naming what was seen when the time runs out. The agent is asked
    on a connection of its own (agent_connection, by default _agent.own_connection)."""
    if agent_connection is None:
        agent_connection = _agent.own_connection if 'agent' in cloud['address_sources'] else same_connection
    with agent_connection(dom) as agent_dom:
        return _wait(conn, dom, agent_dom, cloud, clock, sleep, banner)


@contextlib.contextmanager
def same_connection(dom):
    """No connection of its own: dom itself (no agent to ask)."""
    yield dom


def _wait(conn, dom, agent_dom, cloud, clock, sleep, banner):
    start = clock()
    deadline = start + cloud['wait_timeout']
    sources = list(cloud['address_sources'])
    # An agent that did not answer in time holds libvirt's agent job on the guest: asking it
    # again every poll would only pile up calls inside libvirtd. It is asked once.
    silent = {}
    want_ssh = cloud['wait_for'] == 'ssh'
    entries, errors, address = [], {}, None
    host = port = line = None
    while True:
        try:
            entries, errors = _addr.domain_addresses_report(conn, dom, tuple(sources), agent_dom=agent_dom)
        except Exception as exc:  # pylint: disable=broad-except
            # libvirtError: the daemon went away (restarted) or the domain was removed
            raise WaitError.rewrap(exc, "Lost libvirt while waiting for %s of %s: %s. Is libvirtd "
                                   "running (a restart drops every client), and does the domain "
                                   "still exist? Run the task again."
                                   % (cloud['wait_for'], dom.name(), exc))
        if _agent.timed_out(errors.get('agent')):
            silent['agent'] = errors['agent']
            sources.remove('agent')
        errors = dict(silent, **errors)
        address = _addr.best_address(entries) or _addr.best_address(entries, 'ipv6')
        if want_ssh:
            host, port = ssh_endpoint(cloud['port_forwards'], address, cloud.get('ssh_host'),
                                      cloud.get('ssh_port'))
            if host:
                line = banner(host, port, timeout=max(1.0, min(30.0, deadline - clock())))
                if line and not line.startswith('SSH-'):
                    line = None
                if line:
                    break
        elif address:
            break
        if clock() >= deadline:
            break
        # Gentle: one agent query and at most one SSH connection every few seconds.
        sleep(min(5.0 if want_ssh else 2.0, max(0.1, deadline - clock())))
    waited = round(clock() - start, 1)
    out = {'interfaces': entries, 'address_errors': errors, 'ansible_host': address,
           'ansible_port': None, 'ssh_banner': line, 'waited': waited}
    if want_ssh and host:
        out['ansible_host'], out['ansible_port'] = host, port
    if (want_ssh and not line) or (not want_ssh and not address):
        seen = ', '.join('%s via %s' % (a['address'], a['source']) for e in entries
                         for a in e['addresses']) or 'no address'
        why = '; '.join('%s: %s' % kv for kv in sorted(errors.items()))
        what = ('the SSH banner at %s:%s' % (host, port) if want_ssh and host
                else 'an SSH endpoint (no address yet)' if want_ssh else 'an IP address')
        raise WaitError(
            "%s did not show %s within wait_timeout=%ss (seen: %s%s). Is cloud-init done in "
            "the guest (serial console), is the guest on a network with DHCP, does the image "
            "run qemu-guest-agent? Raise wait_timeout for slow (emulated) guests."
            % (dom.name(), what, cloud['wait_timeout'], seen,
               '; skipped sources: ' + why if why else ''),
            interfaces=entries)
    return out
