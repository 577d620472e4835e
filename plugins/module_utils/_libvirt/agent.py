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
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import threading

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
