# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Calls that wait for a guest's agent, bounded. Private to the collection: no API promise.

libvirt waits for a guest agent's answer as long as the domain's agent timeout says, and
unless an admin set one (`virsh guest-agent-timeout`), that is for ever. The guest runs its
agent: one that reads a command and never answers held `virsh domifaddr --source agent`
(and so the guest modules' wait_for, the inventory plugin's listing of every guest after it,
a backup's freeze) for as long as the guest liked (measured with the tiny guest's fake agent,
tests/integration/test_hostile_agent.py). Every agent call of the collection goes through
bounded(): it runs in a thread, and the caller gives up after `timeout` seconds.

What giving up leaves: libvirt's agent job on that domain stays taken until the guest answers
or stops, so the next agent call on it fails after libvirt's own 30 s ("cannot acquire state
change lock"), also bounded here. Nothing is changed on the domain (the agent timeout is the
admin's setting, not ours).

The call given up on also stays in flight on its libvirt connection, and on the run's main
connection that could hold up the calls after it: measured with other clients waiting on the
same silent agent, a guest module's next libvirt call (made after the bounded wait had given
up) did not go out until the abandoned call came back, 30 s later; in a CI run the module was
still running after 50 s (wait_timeout 15). own_connection() keeps agent calls on a
connection of their own.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import threading
import time

try:
    import libvirt
    LIBVIRT_ERROR = libvirt.libvirtError
except ImportError:     # the callers report a missing libvirt-python
    libvirt = None
    LIBVIRT_ERROR = ()

# Seconds an agent call may take. A real qemu-guest-agent answers in well under a second,
# also in an emulated guest; a freeze of many file systems can take a few.
AGENT_TIMEOUT = 10.0
TIMED_OUT = 'the guest agent did not answer within'


class AgentTimeout(Exception):
    """The guest agent did not answer in time (the call may still be pending in libvirt)."""


def bounded(fn, args=(), timeout=AGENT_TIMEOUT, what=None):
    """fn(*args), or AgentTimeout when it has not returned after timeout seconds. An exception
    fn raises is raised here."""
    box = {}

    def call():
        try:
            box['value'] = fn(*args)
        # handed to the caller as it is
        except BaseException as exc:  # pylint: disable=broad-except
            box['error'] = exc

    worker = threading.Thread(target=call, name='kvmops-agent-call')
    worker.daemon = True      # an abandoned call never keeps the process alive
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise AgentTimeout('%s %ss%s' % (TIMED_OUT, int(timeout) if timeout == int(timeout) else timeout,
                                         ' (%s)' % what if what else ''))
    if 'error' in box:
        raise box['error']
    return box.get('value')


def timed_out(message):
    """Whether an error text is bounded()'s timeout."""
    return isinstance(message, str) and message.startswith(TIMED_OUT)


@contextlib.contextmanager
def own_connection(dom):
    """dom on a libvirt connection of its own, for the agent calls of one step (a wait, a
    freeze and its thaw): a call given up on stays pending there, never on the connection the
    run goes on with. When no second connection can be had (max_clients reached, a read-only
    caller), the agent is asked on dom's own connection, still bounded.

    The connection is closed at the end; one with a call still pending is only released
    (its domain object keeps it), never waited for."""
    other = None
    agent_dom = dom
    if libvirt is not None:
        try:
            other = libvirt.open(dom.connect().getURI())
            agent_dom = other.lookupByUUIDString(dom.UUIDString())
        except libvirt.libvirtError:
            if other is not None:
                _close(other)
            other, agent_dom = None, dom
    try:
        yield agent_dom
    finally:
        if other is not None:
            _close(other)


def _close(conn):
    try:
        conn.close()
    # a daemon that went away cannot be closed; nothing is left to release
    except Exception:  # pylint: disable=broad-except
        pass


def freeze(dom, timeout=AGENT_TIMEOUT):
    """Freeze the guest's file systems through its agent (guest-fsfreeze-freeze), on a
    connection of its own and bounded. Raises AgentTimeout (the freeze may still land later:
    thaw() it), or libvirt's error when the agent refused or is not there."""
    with own_connection(dom) as agent_dom:
        return bounded(agent_dom.fsFreeze, (None, 0), timeout, what='guest-fsfreeze-freeze')


def thaw(dom, timeout=AGENT_TIMEOUT, tries=5, sleep=time.sleep):
    """Thaw the guest's file systems (guest-fsfreeze-thaw), bounded: True when the agent said
    so. An error (the agent busy a moment) is tried again; a timeout is not (libvirt's agent
    job is still taken: asking again only waits again)."""
    for dummy in range(tries):
        try:
            with own_connection(dom) as agent_dom:
                bounded(agent_dom.fsThaw, (None, 0), timeout, what='guest-fsfreeze-thaw')
            return True
        except AgentTimeout:
            return False
        except LIBVIRT_ERROR:   # the agent did not take it this time
            sleep(0.5)
    return False
