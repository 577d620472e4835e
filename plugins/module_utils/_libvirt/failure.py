# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What to tell the user when a libvirt call fails in the middle of a run.

Private to the collection: no API promise. The usual cause is the daemon going away
(stopped, killed, restarted by a package update) between two calls of one module run.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


def connection_alive(conn):
    """False when the run's connection to libvirtd is gone (a daemon restart kills it)."""
    try:
        return bool(conn.isAlive())
    except Exception:  # pylint: disable=broad-except  # a dead connection may raise too
        return False


def libvirt_failure_message(what, exc, conn, actions=None):
    """The fail_json message for a libvirt error that escaped the manager."""
    done = ', '.join(actions or []) or 'nothing'
    if not connection_alive(conn):
        return ('The connection to libvirtd was lost while handling %s (%s): the daemon was '
                'stopped or restarted during the run. Done before it went away: %s. Start '
                'libvirtd (service libvirtd start, or systemctl start libvirtd / virtqemud) '
                'and run again: the run picks up from what libvirt has stored.'
                % (what, exc, done))
    return ('libvirt failed while handling %s: %s. Done before the failure: %s. Fix the '
            'cause libvirt names and run again.' % (what, exc, done))
