# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt's ABI constants the collection uses, by their libvirt names.

The numbers are stable parts of libvirt's public ABI; keeping them here lets pure-logic code
(and its unit tests) run without libvirt-python. Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

# virDomainXMLFlags
VIR_DOMAIN_XML_SECURE = 1
VIR_DOMAIN_XML_INACTIVE = 2
# virDomainModificationImpact
VIR_DOMAIN_AFFECT_CURRENT = 0
VIR_DOMAIN_AFFECT_LIVE = 1
VIR_DOMAIN_AFFECT_CONFIG = 2
# virConnectListAllDomainsFlags
VIR_CONNECT_LIST_DOMAINS_ACTIVE = 1
VIR_CONNECT_LIST_DOMAINS_INACTIVE = 2
VIR_CONNECT_LIST_DOMAINS_PERSISTENT = 4
# virDomainMetadataType
VIR_DOMAIN_METADATA_ELEMENT = 2
# virDomainState
VIR_DOMAIN_NOSTATE = 0
VIR_DOMAIN_RUNNING = 1
VIR_DOMAIN_BLOCKED = 2
VIR_DOMAIN_PAUSED = 3
VIR_DOMAIN_SHUTDOWN = 4
VIR_DOMAIN_SHUTOFF = 5
VIR_DOMAIN_CRASHED = 6
VIR_DOMAIN_PMSUSPENDED = 7

# What the collection reports for each virDomainState (a shutting-down guest still runs).
DOMAIN_STATE_NAMES = {
    VIR_DOMAIN_NOSTATE: 'unknown', VIR_DOMAIN_RUNNING: 'running', VIR_DOMAIN_BLOCKED: 'running',
    VIR_DOMAIN_PAUSED: 'paused', VIR_DOMAIN_SHUTDOWN: 'running', VIR_DOMAIN_SHUTOFF: 'stopped',
    VIR_DOMAIN_CRASHED: 'crashed', VIR_DOMAIN_PMSUSPENDED: 'suspended',
}
