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

# virNetworkXMLFlags
VIR_NETWORK_XML_INACTIVE = 1
# virConnectListAllNetworksFlags
VIR_CONNECT_LIST_NETWORKS_INACTIVE = 1
VIR_CONNECT_LIST_NETWORKS_ACTIVE = 2
# virNetworkUpdateCommand
VIR_NETWORK_UPDATE_COMMAND_MODIFY = 1
VIR_NETWORK_UPDATE_COMMAND_DELETE = 2
VIR_NETWORK_UPDATE_COMMAND_ADD_LAST = 3
# virNetworkUpdateSection
VIR_NETWORK_SECTION_IP_DHCP_HOST = 4
VIR_NETWORK_SECTION_IP_DHCP_RANGE = 5
VIR_NETWORK_SECTION_DNS_HOST = 10
# virNetworkUpdateFlags
VIR_NETWORK_UPDATE_AFFECT_LIVE = 1
VIR_NETWORK_UPDATE_AFFECT_CONFIG = 2

# virDomainSnapshotCreateFlags
VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY = 16
VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE = 64
VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC = 128
# virDomainSnapshotDeleteFlags
VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN = 1
VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY = 2
# virDomainSnapshotRevertFlags
VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING = 1
VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED = 2
VIR_DOMAIN_SNAPSHOT_REVERT_FORCE = 4
# virDomainSnapshotListFlags
VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS = 1
VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL = 1024
# virDomainBlockCommitFlags / virDomainBlockJobAbortFlags
VIR_DOMAIN_BLOCK_COMMIT_ACTIVE = 4
VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT = 2
# virErrorNumber values the collection tells apart
VIR_ERR_NO_NETWORK = 43
VIR_ERR_NO_DOMAIN_SNAPSHOT = 72
VIR_ERR_AGENT_UNRESPONSIVE = 86
VIR_ERR_OPERATION_UNSUPPORTED = 84

# virDomainBackupBeginFlags
VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL = 1
# virDomainCheckpointXMLFlags
VIR_DOMAIN_CHECKPOINT_XML_SIZE = 4
# virDomainCheckpointDeleteFlags
VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY = 2
# virDomainCreateFlags
VIR_DOMAIN_START_PAUSED = 1
# virDomainJobType (virDomainGetJobInfo / virDomainGetJobStats)
VIR_DOMAIN_JOB_NONE = 0
VIR_DOMAIN_JOB_COMPLETED = 3
VIR_DOMAIN_JOB_FAILED = 4
VIR_DOMAIN_JOB_CANCELLED = 5
# virDomainGetJobStatsFlags
VIR_DOMAIN_JOB_STATS_COMPLETED = 1
# virDomainJobOperation
VIR_DOMAIN_JOB_OPERATION_BACKUP = 9
# virErrorNumber: internal; a job lock not acquired in time; no such checkpoint; no backup job
VIR_ERR_INTERNAL_ERROR = 1
VIR_ERR_OPERATION_TIMEOUT = 68
VIR_ERR_NO_DOMAIN_CHECKPOINT = 103
VIR_ERR_NO_DOMAIN_BACKUP = 104
