# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a guest's manager shares with the other guests of its run, handed to it explicitly.

Private to the collection: no API promise.

- Solo: one guest per run (virt_install_domain): no locks, the host facts read once.
- Shared: the guests of one virt_install_domains run: named locks (volume creation per
  storage pool, one fetch per install source or base image) and the host facts, asked once
  per virt_type/arch and shared by every guest.

What libvirt (or the shared host) cannot do concurrently is serialised here, not in the
manager: the manager asks for a lock by name and gets a no-op one when it runs alone.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import copy
import threading
import time

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import host as _host
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import capabilities
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python

ASYNC_JOBS = 'asynchronous jobs running'
POOL_RETRIES = 20


@contextlib.contextmanager
def _unlocked():
    yield


class Solo(object):
    """One guest alone: nothing to serialise."""

    def lock(self, key):
        return _unlocked()

    def locks(self, keys):
        return _unlocked()

    def pools(self, names):
        return _unlocked()

    def all_pools(self, conn):
        return _unlocked()

    def host_facts(self, spec, conn):
        """(decision, host facts): the capabilities read once, for both questions."""
        caps = capabilities.read(conn)
        decision = _host.decide_virt_type(spec, conn, caps)
        return decision, _host.host_facts(conn, spec, decision, caps)


class Shared(object):
    """What the guests of one run share: named locks and the host facts."""

    def __init__(self):
        self._lock = threading.Lock()
        self._locks = {}
        self._facts = {}
        self._probes = {}

    def lock(self, key):
        with self._lock:
            return self._locks.setdefault(key, threading.RLock())

    @contextlib.contextmanager
    def locks(self, keys):
        """Hold the lock of every key (sorted: no deadlock between guests)."""
        with contextlib.ExitStack() as stack:
            for key in sorted(set(keys)):
                stack.enter_context(self.lock(key))
            yield

    def pools(self, names):
        return self.locks(('pool', name) for name in names)

    def all_pools(self, conn):
        """Every pool's lock (removing a guest's storage may touch any pool)."""
        try:
            names = conn.listStoragePools()
        except libvirt.libvirtError:
            names = []
        return self.pools(names)

    def url_problem(self, url, validate_certs, timeout):
        """Why the install tree at url does not answer, or None: one GET per URL and run.
        (The install-media code is imported only when a guest has a URL to probe.)"""
        from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media
        key = (url, validate_certs)
        with self.lock(('probe',) + key):
            if key not in self._probes:
                self._probes[key] = media.probe_url(url, validate_certs, timeout)
            return self._probes[key]

    def host_facts(self, spec, conn):
        key = (spec.get('virt_type') or 'auto', spec.get('arch'))
        with self.lock(('facts',) + key):
            if key not in self._facts:
                decision = _host.decide_virt_type(spec, conn)
                self._facts[key] = (decision, _host.host_facts(conn, spec, decision))
            return copy.deepcopy(self._facts[key])


def retry_pool_busy(call, sleep=time.sleep, retries=POOL_RETRIES):
    """call() again while libvirt says the pool has asynchronous jobs running (someone else,
    e.g. a pool refresh by another tool, holds it): up to `retries` times, 0.1 s .. 1 s."""
    for attempt in range(retries + 1):
        try:
            return call()
        except KvmopsError as exc:
            if ASYNC_JOBS not in str(exc) or attempt == retries:
                raise
        sleep(min(1.0, 0.1 * (attempt + 1)))
